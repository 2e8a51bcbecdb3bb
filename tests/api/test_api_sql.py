"""SQL while the stack runs: `POST /admin/sql` and `cda sql` / `cda query` read the embedded chDB store that the API
process holds, in ClickHouse's readonly mode, within a row and a time limit; writes, DDL, SET and two statements
are refused with the reason; only the operator may ask."""

from __future__ import annotations

from urllib.parse import urlsplit

import httpx
import pytest

from cda.cli.sql_cmd import SqlRefused, read_sql
from tests.api.api_support import api_stack, auth

pytestmark = pytest.mark.kafka
OPERATOR = "op-" + "q" * 40


def test_read_only_sql_through_the_api_that_holds_the_store(catalog, store) -> None:  # type: ignore[no-untyped-def]
    for stack in api_stack(catalog, store, api_operator_key=OPERATOR):
        company, key = stack.company()
        with stack.client(key) as client:
            assert client.post("/company-automation/process", json={"task": "bill", "data": {"a": 1}}).status_code == 202
            assert client.post("/admin/sql", json={"sql": "SELECT 1"}).status_code == 401  # a company key is not enough

        def ask(url: str = stack.url, **body: object) -> httpx.Response:
            return httpx.post(f"{url}/admin/sql", json=body, headers=auth(OPERATOR), timeout=60)

        counted = ask(sql="SELECT count() AS n FROM numbers(10)")
        assert counted.status_code == 200 and counted.json() == {"columns": ["n"], "rows": [[10]], "truncated": False}
        capped = ask(sql="SELECT number FROM numbers(100)", max_rows=5).json()
        assert len(capped["rows"]) == 5 and capped["truncated"]
        views = ask(sql="SELECT company_id, count() FROM job_requests WHERE company_id = {c:String} GROUP BY company_id",
                    parameters={"c": company})
        assert views.status_code == 200, views.text
        for bad, reason in (("INSERT INTO job_facts (company_id) VALUES ('x')", "only reads are allowed"),
                            ("DROP TABLE job_facts", "only reads are allowed"),
                            ("SELECT number FROM numbers(10) SETTINGS limit=0", "may not carry SETTINGS"),
                            ("SELECT * FROM job_facts INTO OUTFILE 'x.csv'", "INTO OUTFILE writes a file"),
                            ("SELECT 1 INTO/**/OUTFILE 'y.csv'", "INTO OUTFILE writes a file"),
                            ("/* hi */ DROP TABLE job_facts", "only reads are allowed"),
                            ("SELECT 1; DROP TABLE job_facts", "one statement at a time"),
                            ("SELECT count() FROM numbers(100000000000)", "Timeout exceeded"),
                            ("SELECT FROM WHERE", "Syntax error")):
            refused = ask(sql=bad, timeout_s=1)
            assert refused.status_code == 422 and reason in refused.json()["error"], (bad, refused.text)
        assert ask(sql="SELECT count() FROM job_facts").status_code == 200  # nothing was dropped
        stack.store.command("CREATE TABLE IF NOT EXISTS sql_check (x UInt8) ENGINE = Memory")  # the session still writes
        stack.store.command("DROP TABLE sql_check")

        # `cda sql` and `cda query` go through the API while it holds the embedded store
        port = urlsplit(stack.url).port
        config = stack.settings.model_copy(update={"api_host": "127.0.0.1", "api_port": port})
        columns, rows = read_sql(config, "SELECT 40 + 2 AS answer")
        assert (columns, rows) == (["answer"], [[42]])
        with pytest.raises(SqlRefused, match="only reads"):
            read_sql(config, "TRUNCATE TABLE job_facts")
