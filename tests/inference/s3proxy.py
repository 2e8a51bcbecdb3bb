"""A real S3-compatible server for the tests: S3Proxy (Apache 2.0, org.gaul:s3proxy on Maven Central) with its
filesystem backend, run with `java` from jars Maven fetches once into `~/.cache/cda/s3proxy/<version>`, the way the
Kafka jars are fetched. It checks AWS signatures (v2 and v4), so a wrong secret is refused as at AWS."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import httpx

from tests.helpers import free_port

VERSION = "2.6.0"
IDENTITY = "cda-test-identity"
CREDENTIAL = "cda-test-credential-" + "s" * 16
POM = f"""<project xmlns="http://maven.apache.org/POM/4.0.0"><modelVersion>4.0.0</modelVersion>
<groupId>cda.tests</groupId><artifactId>s3proxy-jars</artifactId><version>1</version>
<dependencies><dependency><groupId>org.gaul</groupId><artifactId>s3proxy</artifactId><version>{VERSION}</version>
</dependency></dependencies></project>
"""


def jars() -> Path:
    """The folder of S3Proxy's jars, fetched by Maven when absent."""
    root = Path(os.environ.get("CDA_TEST_S3PROXY_CACHE", Path.home() / ".cache" / "cda" / "s3proxy")) / VERSION
    lib = root / "lib"
    if (root / "complete").exists():
        return lib
    mvn = shutil.which("mvn")
    if mvn is None:
        raise RuntimeError("Maven (mvn) is needed to fetch S3Proxy's jars (apt-get install maven)")
    root.mkdir(parents=True, exist_ok=True)
    (root / "pom.xml").write_text(POM)
    subprocess.run([mvn, "-q", "-B", "-f", str(root / "pom.xml"), "dependency:copy-dependencies",
                    f"-DoutputDirectory={lib}"], check=True, timeout=600)
    (root / "complete").write_text(VERSION)
    return lib


class S3Proxy:
    """One S3Proxy on a loopback port, its buckets as folders under `data`."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        data = folder / "data"
        data.mkdir(parents=True, exist_ok=True)
        properties = folder / "s3proxy.properties"
        properties.write_text("\n".join([
            f"s3proxy.endpoint={self.url}", "s3proxy.authorization=aws-v2-or-v4",
            f"s3proxy.identity={IDENTITY}", f"s3proxy.credential={CREDENTIAL}",
            "jclouds.provider=filesystem", f"jclouds.filesystem.basedir={data}"]) + "\n")
        self.log = (folder / "s3proxy.log").open("wb")
        self.process = subprocess.Popen(["java", "-Xmx128m", "-cp", f"{jars()}/*", "org.gaul.s3proxy.Main",
                                         "--properties", str(properties)], stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(self.url, timeout=1, trust_env=False)  # 403 without a signature: it answers
                return
            except httpx.HTTPError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"S3Proxy did not start: {(folder / 's3proxy.log').read_text()[-2000:]}") from None
                time.sleep(0.2)

    def client(self, secret: str = CREDENTIAL):  # type: ignore[no-untyped-def]
        import boto3
        from botocore.config import Config

        return boto3.client("s3", endpoint_url=self.url, region_name="us-east-1", aws_access_key_id=IDENTITY,
                            aws_secret_access_key=secret,
                            config=Config(request_checksum_calculation="when_required",
                                          response_checksum_validation="when_required"))

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)
        self.log.close()
