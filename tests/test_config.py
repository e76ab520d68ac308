"""Job file validation and merging, in process (C2, C3 and the request-key table).

Every invalid case names the line it expects with a trailing ``# <-`` marker, so the expected
line number is read from the YAML itself and can never drift from it.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from yarl import URL

from crawler.config.jobfile import load_job_file
from crawler.config.spec import USER_AGENT, JobFile, JobSpec
from crawler.errors import ConfigError
from crawler.tasks.expand import interleave

ROOT = Path(__file__).resolve().parent.parent
U = "http://127.0.0.1:9"  # never fetched: these tests only load job files


def marked_line(text: str) -> int:
    """The 1-based number of the line carrying the ``# <-`` marker."""
    lines = textwrap.dedent(text).splitlines()
    [number] = [i for i, line in enumerate(lines, 1) if "# <-" in line]
    return number


def load(write_job, text: str, **env: str) -> JobFile:
    return load_job_file(write_job(text), environ=env)


def problems(write_job, text: str, **env: str) -> list[str]:
    """Every printed problem line of an invalid job file, the file name left out."""
    path = write_job(text)
    with pytest.raises(ConfigError) as info:
        load_job_file(path, environ=env)
    lines = str(info.value).splitlines()
    assert lines, "ConfigError without problems"
    for line in lines:
        assert line.startswith(f"{path}:"), line
    return [line[len(str(path)) + 1 :] for line in lines]


def job(job_file: JobFile, name: str) -> JobSpec:
    [found] = [j for j in job_file.jobs if j.name == name]
    return found


def J(*lines: str) -> str:
    """A file with one job `a` (a valid URL) and ``lines`` added to it."""
    return "\n".join(["jobs:", "  - name: a", f"    url: {U}", *(f"    {x}" for x in lines)])


def T(*lines: str) -> str:
    """A file with ``lines`` at the top, then one valid job."""
    return "\n".join([*lines, f"jobs: [{{name: a, url: {U}}}]"])


def D(*lines: str) -> str:
    """A file with ``lines`` under `defaults:`, then one valid job."""
    return T("defaults:", *(f"  {x}" for x in lines))


def JOBS(*lines: str) -> str:
    """A file with ``lines`` under `jobs:` as written."""
    return "\n".join(["jobs:", *(f"  {x}" for x in lines)])


# (id, job file, key path, words the message must hold); the problem sits on the `# <-` line.
INVALID: list[tuple[str, str, str, str]] = [
    # unknown keys: a typo is never ignored
    ("top-typo", T("versoin: 1  # <-"), "versoin", "unknown key"),
    ("defaults-typo", D("timout: 5  # <-"), "defaults.timout", "did you mean 'timeout'"),
    ("job-typo", J("retry: 3  # <-"), "jobs[0].retry", "did you mean 'retries'"),
    ("timeout-typo", J("timeout:", "  totl: 5  # <-"), "jobs[0].timeout.totl", "unknown key"),
    (
        "defaults-timeout-typo",
        D("timeout: {sock_rad: 5}  # <-"),
        "defaults.timeout.sock_rad",
        "'sock_read'",
    ),
    ("url-in-defaults", D(f"url: {U}  # <-"), "defaults.url", "unknown key"),
    ("follow-typo", J("follow: {dept: 2}  # <-"), "jobs[0].follow.dept", "unknown key"),
    # wrong types
    ("concurrency-text", T("concurrency: many  # <-"), "concurrency", "integer"),
    ("retries-float", J("retries: 1.5  # <-"), "jobs[0].retries", "integer"),
    ("max-bytes-bool", J("max_bytes: true  # <-"), "jobs[0].max_bytes", "integer"),
    ("headers-list", J("headers: [a, b]  # <-"), "jobs[0].headers", "mapping"),
    ("header-value-list", J("headers:", "  X-A: [1]  # <-"), "jobs[0].headers.X-A", "string"),
    ("header-name", J("headers:", "  'X A': b  # <-"), "jobs[0].headers.X A", "header name"),
    (
        "header-newline",
        J("headers:", '  X-A: "a\\r\\nB: c"  # <-'),
        "jobs[0].headers.X-A",
        "line breaks",
    ),
    (
        "header-control",
        J("headers:", '  X-A: "a\\x01b"  # <-'),
        "jobs[0].headers.X-A",
        "control characters",
    ),
    (
        "params-nested",
        J("params:", "  ok: 1", "  deep: {b: c}  # <-"),
        "jobs[0].params.deep",
        "scalar",
    ),
    ("form-not-mapping", J("form: text  # <-"), "jobs[0].form", "mapping"),
    ("data-number", J("data: 5  # <-"), "jobs[0].data", "string"),
    ("conditional-text", J("conditional: sometimes  # <-"), "jobs[0].conditional", "true or false"),
    ("verify-number", J("verify: 1  # <-"), "jobs[0].verify", "true, false"),
    ("save-mode", J("save: html  # <-"), "jobs[0].save", "text, bytes, json, jsonl"),
    ("urls-string", JOBS("- name: a", f"  urls: {U}/x  # <-"), "jobs[0].urls", "list"),
    ("urls-empty", JOBS("- name: a", "  urls: []  # <-"), "jobs[0].urls", "non-empty"),
    ("name-number", JOBS("- name: 5  # <-", f"  url: {U}"), "jobs[0].name", "string"),
    ("defaults-list", T("defaults: [a]  # <-"), "defaults", "mapping"),
    ("jobs-empty", "version: 1\njobs: []  # <-", "jobs", "non-empty"),
    ("jobs-missing", "version: 1  # <-\noutput: x", "jobs", "required"),
    ("job-not-mapping", JOBS("- just a string  # <-"), "jobs[0]", "mapping"),
    ("json-nan", J("json: {x: .nan}  # <-"), "jobs[0].json", "JSON"),
    (
        "python-tag",
        JOBS("- name: a", f"  url: !!python/name:os.system {U}  # <-"),
        "jobs[0].url",
        "tag",
    ),
    ("bad-int-tag", J("retries: !!int three  # <-"), "jobs[0].retries", "cannot read"),
    # URLs: http and https only, with a host
    (
        "url-ftp",
        JOBS("- name: a", "  url: ftp://example.org/x  # <-"),
        "jobs[0].url",
        "http or https",
    ),
    (
        "url-no-scheme",
        JOBS("- name: a", "  url: example.org/x  # <-"),
        "jobs[0].url",
        "http or https",
    ),
    (
        "url-file",
        JOBS("- name: a", "  url: file:///etc/passwd  # <-"),
        "jobs[0].url",
        "http or https",
    ),
    ("url-no-host", JOBS("- name: a", "  url: 'http:///path'  # <-"), "jobs[0].url", "no host"),
    ("url-empty", JOBS("- name: a", "  url: ''  # <-"), "jobs[0].url", "http or https"),
    (
        "url-space-host",
        JOBS("- name: a", "  url: 'http://exa mple.org/'  # <-"),
        "jobs[0].url",
        "host",
    ),
    (
        "url-bad-port",
        JOBS("- name: a", "  url: 'http://h:99999/'  # <-"),
        "jobs[0].url",
        "invalid URL",
    ),
    (
        "urls-second",
        JOBS("- name: a", "  urls:", f"    - {U}/ok", "    - mailto:x@y.org  # <-"),
        "jobs[0].urls[1]",
        "http",
    ),
    (
        "urls-number",
        JOBS("- name: a", "  urls:", f"    - {U}/ok", "    - 42  # <-"),
        "jobs[0].urls[1]",
        "URL string",
    ),
    ("proxy-socks", J("proxy: socks5://127.0.0.1:1080  # <-"), "jobs[0].proxy", "http or https"),
    # methods
    ("method-unknown", J("method: FETCH  # <-"), "jobs[0].method", "GET, POST"),
    ("method-empty", J("method: ''  # <-"), "jobs[0].method", "GET, POST"),
    ("method-defaults", D("method: CONNECT  # <-"), "defaults.method", "GET, POST"),
    # exactly one of url, urls, urls_file
    ("url-and-urls", J(f"urls: [{U}/b]  # <-"), "jobs[0].urls", "only one of"),
    (
        "urls-file-and-url",
        JOBS("- name: a", "  urls_file: u.txt", f"  url: {U}  # <-"),
        "jobs[0].url",
        "only one",
    ),
    ("no-url", JOBS("- name: a  # <-", "  method: GET"), "jobs[0]", "one of url, urls, urls_file"),
    # ${VAR}, urls_file, encoding, filename, version
    (
        "missing-var",
        JOBS("- name: a", "  url: ${NOT_SET_HERE}/x  # <-"),
        "jobs[0].url",
        "NOT_SET_HERE is not set",
    ),
    (
        "missing-urls-file",
        JOBS("- name: a", "  urls_file: nowhere.txt  # <-"),
        "jobs[0].urls_file",
        "not found",
    ),
    ("urls-file-dir", JOBS("- name: a", "  urls_file: .  # <-"), "jobs[0].urls_file", "not a file"),
    ("missing-ca", J("verify: no-such-ca.pem  # <-"), "jobs[0].verify", "not found"),
    ("encoding", J("encoding: klingon-8  # <-"), "jobs[0].encoding", "unknown codec"),
    ("encoding-base64", J("encoding: base64  # <-"), "jobs[0].encoding", "unknown codec"),
    (
        "placeholder",
        J("filename: '{name}{ext}'  # <-"),
        "jobs[0].filename",
        "unknown placeholder {name}",
    ),
    ("placeholder-spec", J("filename: '{index:04d}'  # <-"), "jobs[0].filename", "format spec"),
    ("placeholder-broken", J("filename: 'x{host'  # <-"), "jobs[0].filename", "template"),
    ("filename-empty", J("filename: '/'  # <-"), "jobs[0].filename", "name a file"),
    ("version-2", T("version: 2  # <-"), "version", "must be 1"),
    ("version-text", T("version: 'one'  # <-"), "version", "must be 1"),
    ("version-true", T("version: true  # <-"), "version", "must be 1"),
    # ranges
    ("concurrency-0", T("concurrency: 0  # <-"), "concurrency", "at least 1"),
    ("per-host-0", T("per_host: 0  # <-"), "per_host", "at least 1"),
    ("max-bytes-0", J("max_bytes: 0  # <-"), "jobs[0].max_bytes", "at least 1"),
    ("max-redirects-neg", J("max_redirects: -1  # <-"), "jobs[0].max_redirects", "at least 0"),
    ("retries-neg", D("retries: -1  # <-"), "defaults.retries", "at least 0"),
    ("rate-0", T("rate_per_host: 0  # <-"), "rate_per_host", "above 0"),
    ("rate-neg", T("rate_per_host: -2  # <-"), "rate_per_host", "above 0"),
    ("rate-text", T("rate_per_host: fast  # <-"), "rate_per_host", "number"),
    ("timeout-neg", J("timeout: {total: -1}  # <-"), "jobs[0].timeout.total", "above 0"),
    ("timeout-short-neg", J("timeout: -5  # <-"), "jobs[0].timeout", "above 0"),
    (
        "timeout-text",
        J("timeout:", "  sock_read: soon  # <-"),
        "jobs[0].timeout.sock_read",
        "number",
    ),
    ("timeout-nan", J("timeout:", "  connect: .nan  # <-"), "jobs[0].timeout.connect", "finite"),
    ("timeout-list", J("timeout: [1]  # <-"), "jobs[0].timeout", "mapping"),
    (
        "defaults-timeout-neg",
        D("timeout: {sock_connect: -1}  # <-"),
        "defaults.timeout.sock_connect",
        "above 0",
    ),
    ("follow-depth", J("follow: {depth: -1}  # <-"), "jobs[0].follow.depth", "at least 0"),
    # job names
    ("name-missing", JOBS(f"- url: {U}  # <-"), "jobs[0].name", "required"),
    ("name-space", JOBS("- name: my job  # <-", f"  url: {U}"), "jobs[0].name", "letters, digits"),
    ("name-slash", JOBS("- name: ../up  # <-", f"  url: {U}"), "jobs[0].name", "letters, digits"),
    ("name-dotdot", JOBS("- name: '..'  # <-", f"  url: {U}"), "jobs[0].name", "letters, digits"),
    ("name-empty", JOBS("- name: ''  # <-", f"  url: {U}"), "jobs[0].name", "letters, digits"),
    ("name-windows", JOBS("- name: CON  # <-", f"  url: {U}"), "jobs[0].name", "Windows"),
    ("name-state-folder", JOBS("- name: .crawler  # <-", f"  url: {U}"), "jobs[0].name", "state"),
    (
        "name-manifest",
        JOBS("- name: manifest.jsonl  # <-", f"  url: {U}"),
        "jobs[0].name",
        "manifest",
    ),
    (
        "name-jsonl-manifest",
        J("save: jsonl").replace("name: a", "name: manifest  # <-"),
        "jobs[0].name",
        "manifest",
    ),
    (
        "name-duplicate",
        JOBS("- name: pages", f"  url: {U}/a", "- name: pages  # <-", f"  url: {U}/b"),
        "jobs[1].name",
        "duplicate job name 'pages'",
    ),
    (
        "name-duplicate-case",
        JOBS("- name: Pages", f"  url: {U}/a", "- name: pages  # <-", f"  url: {U}/b"),
        "jobs[1].name",
        "duplicate job name",
    ),
    (
        "name-jsonl-clash",
        JOBS(
            "- {name: items, save: jsonl, url: " + U + "}",
            "- name: items.jsonl  # <-",
            f"  url: {U}",
        ),
        "jobs[1].name",
        "clash",
    ),
    # bodies: at most one, reported where the second one is written
    (
        "json-and-data",
        J("json: {a: 1}", "data: text  # <-"),
        "jobs[0].data",
        "at most one of json, data, form",
    ),
    ("form-then-json", D("form: {a: 1}", "json: [1]  # <-"), "defaults.json", "at most one"),
    # duplicate YAML keys: PyYAML alone would keep the last one silently
    (
        "dup-top",
        T("concurrency: 4", "concurrency: 8  # <-"),
        "concurrency",
        "duplicate key (first on line 1)",
    ),
    ("dup-job", J(f"url: {U}/b  # <-"), "jobs[0].url", "duplicate key"),
    (
        "dup-header",
        J("headers:", "  Accept: a", "  Accept: b  # <-"),
        "jobs[0].headers.Accept",
        "duplicate key",
    ),
    (
        "dup-header-case",
        J("headers:", "  Accept: a", "  accept: b  # <-"),
        "jobs[0].headers.accept",
        "duplicate header",
    ),
    ("dup-param", J("params:", "  q: 1", "  q: 2  # <-"), "jobs[0].params.q", "duplicate key"),
    ("dup-json", J("json:", "  k: 1", "  k: 2  # <-"), "jobs[0].json.k", "duplicate key"),
    ("dup-defaults", D("retries: 1", "retries: 2  # <-"), "defaults.retries", "duplicate key"),
    ("output-empty", T("output: ''  # <-"), "output", "empty"),
]


@pytest.mark.parametrize(
    ("text", "key", "words"), [c[1:] for c in INVALID], ids=[c[0] for c in INVALID]
)
def test_each_rule_reports_file_line_key_and_message(write_job, text, key, words):
    found = problems(write_job, text)
    line = marked_line(text)
    matching = [p for p in found if p.startswith(f"{line}: {key}: ")]
    assert matching, f"expected {line}: {key}: ... in {found}"
    assert any(words in p for p in matching), found
    assert len(found) == 1, f"one mistake, one problem: {found}"


# The other side of every range: the smallest accepted value, and the ways to turn a check off.
VALID_EDGES = [
    ("concurrency: 1", lambda f: f.concurrency == 1),
    ("per_host: 1", lambda f: f.per_host == 1),
    ("rate_per_host: 0.5", lambda f: f.rate_per_host == 0.5),
    ("defaults: {max_bytes: 1}", lambda f: f.jobs[0].max_bytes == 1),
    ("defaults: {max_redirects: 0}", lambda f: f.jobs[0].max_redirects == 0),
    ("defaults: {retries: 0}", lambda f: f.jobs[0].retries == 0),
    ("defaults: {method: patch}", lambda f: f.jobs[0].method == "PATCH"),
    ("defaults: {encoding: GB2312}", lambda f: f.jobs[0].encoding == "gb2312"),
    ("defaults: {encoding: latin-1}", lambda f: f.jobs[0].encoding == "iso8859-1"),
    ("defaults: {filename: '{host}/{path}-{index}{ext}'}", lambda f: f.jobs[0].filename),
    ("defaults: {verify: false}", lambda f: f.jobs[0].verify is False),
    ("version: 1", lambda f: len(f.jobs) == 1),
]


@pytest.mark.parametrize(("top", "check"), VALID_EDGES, ids=[e[0] for e in VALID_EDGES])
def test_edges_of_each_range_are_accepted(write_job, top, check):
    job_file = load(write_job, f"{top}\njobs: [{{name: a, url: {U}}}]")
    assert check(job_file)


@pytest.mark.parametrize(
    ("timeout", "expected"),
    [
        ("{total: 0}", (None, None, None, None)),
        ("{total: null}", (None, None, None, None)),
        ("{total: 0, sock_read: 0, sock_connect: null, connect: 0}", (None, None, None, None)),
        ("{total: 10, connect: 2, sock_connect: 3, sock_read: 4}", (10, 2, 3, 4)),
        ("{total: 0.5}", (0.5, None, None, None)),
        ("{sock_read: 10}", (300, None, None, 10)),
        ("{}", (300, None, None, None)),
        ("30", (30, None, None, None)),
        ("0", (None, None, None, None)),
        ("null", (None, None, None, None)),
    ],
)
def test_timeout_null_or_zero_turns_the_client_timeout_field_off(write_job, timeout, expected):
    job_file = load(write_job, f"jobs:\n  - name: a\n    url: {U}\n    timeout: {timeout}")
    t = job_file.jobs[0].timeout
    assert (t.total, t.connect, t.sock_connect, t.sock_read) == expected


def test_a_file_with_three_mistakes_reports_three_lines_in_one_pass(write_job):
    text = f"""\
        version: 1
        concurrency: 0
        jobs:
          - name: a
            url: {U}/a
            timeout: {{total: 30, sock_rea: 5}}
          - name: b
            url: {U}/b
          - name: c
            urls: [{U}/c]
            timeout:
              total: -3
    """
    found = problems(write_job, text)
    assert found == [
        "2: concurrency: must be at least 1, not 0",
        "6: jobs[0].timeout.sock_rea: unknown key (did you mean 'sock_read'?)",
        "12: jobs[2].timeout.total: must be above 0, not -3 (0 or null turns it off)",
    ]


def test_problems_in_many_places_are_all_reported_sorted_by_line(write_job):
    text = f"""\
        versoin: 1
        defaults:
          headers: {{X-Key: "${{KEY}}"}}
          encoding: nope
        jobs:
          - name: ok
            url: {U}/ok
          - name: bad name
            url: ftp://x/
            method: FETCH
          - name: c
            url: {U}/c
            urls_file: list.txt
          - name: ok
            url: {U}/again
    """
    found = problems(write_job, text)
    assert [p.split(": ")[0:2] for p in found] == [
        ["1", "versoin"],
        ["3", "defaults.headers.X-Key"],
        ["4", "defaults.encoding"],
        ["8", "jobs[1].name"],
        ["9", "jobs[1].url"],
        ["10", "jobs[1].method"],
        ["13", "jobs[2].urls_file"],
        ["14", "jobs[3].name"],
    ]


def test_missing_variables_are_reported_where_they_are_used(write_job):
    text = f"""\
        jobs:
          - name: a
            url: {U}/x
            json:
              user: ok
              nested:
                - first
                - "token ${{NESTED_TOKEN}}"
            params:
              q: ${{QUERY}}
    """
    assert problems(write_job, text) == [
        "8: jobs[0].json.nested[1]: environment variable NESTED_TOKEN is not set",
        "10: jobs[0].params.q: environment variable QUERY is not set",
    ]


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        ("jobs:\n  - name: a\n    url: [unclosed\n", 4, "not valid YAML"),
        ("jobs:\n  - name: a\n\turl: x\n", 3, "not valid YAML"),
        ("jobs:\n  - name: a\n    url: 'open\n", 4, "not valid YAML"),
        ("version: 1\n---\njobs: []\n", 2, "single document"),
        ("", 1, "empty"),
        ("- just\n- a list\n", 1, "mapping"),
    ],
    ids=["flow", "tab", "quote", "two-documents", "empty", "list"],
)
def test_broken_yaml_reports_one_line_with_its_number(write_job, text, line, words):
    [found] = problems(write_job, text)
    assert found.startswith(f"{line}: "), found
    assert words in found


def test_missing_job_file_is_a_problem_not_a_crash(tmp_path):
    with pytest.raises(ConfigError) as info:
        load_job_file(tmp_path / "nope.yaml")
    assert str(info.value) == f"{tmp_path / 'nope.yaml'}:1: job file not found"


# --- merging -----------------------------------------------------------------------------------


MERGE = f"""\
    defaults:
      method: POST
      save: json
      retries: 1
      max_bytes: 1000
      conditional: true
      headers: {{User-Agent: team-bot/2, X-Team: blue, Accept: text/html}}
      params: {{a: 1, b: 2, tag: [x, y]}}
      timeout: {{total: 60, sock_read: 10}}
      json: {{from: defaults}}
    jobs:
      - name: plain
        url: {U}/plain
      - name: own
        url: {U}/own
        method: get
        save: text
        retries: 0
        headers: {{user-agent: mine/1, X-Job: "7", ACCEPT: application/json}}
        params: {{b: 3, tag: z, c: [4, 5]}}
        timeout: {{sock_read: null, connect: 5}}
        data: raw body
"""


def test_defaults_apply_to_every_job(write_job):
    plain = job(load(write_job, MERGE), "plain")
    assert plain.method == "POST"
    assert plain.save == "json"
    assert plain.retries == 1
    assert plain.max_bytes == 1000
    assert plain.conditional is True
    assert dict(plain.headers)["User-Agent"] == "team-bot/2"
    assert dict(plain.headers)["X-Team"] == "blue"
    assert plain.params == (("a", "1"), ("b", "2"), ("tag", "x"), ("tag", "y"))
    t = plain.timeout
    assert (t.total, t.connect, t.sock_connect, t.sock_read) == (60, None, None, 10)
    assert plain.body == b'{"from":"defaults"}'
    assert ("Content-Type", "application/json") in plain.headers


def test_a_jobs_value_replaces_the_default_and_maps_merge_key_by_key(write_job):
    own = job(load(write_job, MERGE), "own")
    assert own.method == "GET"
    assert own.save == "text"
    assert own.retries == 0
    assert own.max_bytes == 1000  # not given by the job: the default stays
    names = [k.lower() for k, _ in own.headers]
    assert len(names) == len(set(names)), own.headers  # one value per header, any case
    headers = {k.lower(): v for k, v in own.headers}
    assert headers["user-agent"] == "mine/1"
    assert headers["accept"] == "application/json"
    assert headers["x-team"] == "blue"
    assert headers["x-job"] == "7"
    # a job's key replaces all the default's values of that key; other keys are kept
    assert sorted(own.params) == [("a", "1"), ("b", "3"), ("c", "4"), ("c", "5"), ("tag", "z")]
    t = own.timeout
    assert (t.total, t.connect, t.sock_connect, t.sock_read) == (60, 5, None, None)
    assert own.body == b"raw body"  # the job's body replaces the default one
    assert headers["content-type"].startswith("text/plain")


def test_built_in_defaults(write_job):
    [only] = load(write_job, f"jobs: [{{name: a, url: {U}}}]").jobs
    assert only.method == "GET"
    assert only.save == "text"
    assert only.retries == 3
    assert only.max_bytes == 1 << 30
    assert only.max_redirects == 10
    assert only.conditional is False
    assert only.verify is True
    assert only.body is None
    assert only.headers == (("User-Agent", USER_AGENT),)
    t = only.timeout
    assert (t.total, t.connect, t.sock_connect, t.sock_read) == (300, None, None, None)


def test_form_body_and_yaml_scalars_as_written(write_job):
    text = f"""\
        jobs:
          - name: a
            url: {U}
            params: {{since: 2024-01-31, on: true, n: 3}}
            form: {{who: me, tags: [a, b]}}
          - name: b
            url: {U}/b
            json: {{day: 2024-02-01}}
    """
    job_file = load(write_job, text)
    a, b = job_file.jobs
    assert a.params == (("since", "2024-01-31"), ("on", "true"), ("n", "3"))
    assert a.body == b"who=me&tags=a&tags=b"
    assert ("Content-Type", "application/x-www-form-urlencoded") in a.headers
    assert b.body == b'{"day":"2024-02-01"}'  # a date is sent as written, not a crash


def test_yaml_anchors_and_merge_keys_work(write_job):
    text = f"""\
        x-common: &common
          method: POST
          headers: &h {{X-A: "1"}}
        jobs:
          - <<: *common
            name: a
            url: {U}/a
          - <<: *common
            name: b
            method: PUT
            url: {U}/b
            headers:
              <<: *h
              X-B: "2"
    """
    # An anchor does not make an unknown key known: `x-common` is still a typo to report...
    assert [p.split(": ")[1] for p in problems(write_job, text)] == ["x-common"]
    # ...but anchored under `defaults`, the same merge keys fill in jobs and headers.
    text = text.replace("x-common: &common", "defaults: &common").replace(
        "  method: POST\n", "  retries: 2\n"
    )
    a, b = load(write_job, text).jobs
    assert a.retries == 2
    assert b.method == "PUT"
    assert {k: v for k, v in b.headers if k.startswith("X-")} == {"X-A": "1", "X-B": "2"}


# --- ${VAR} ------------------------------------------------------------------------------------


def test_variables_fill_any_string_value(write_job, tmp_path):
    text = """\
        output: ${OUT_DIR}/results
        jobs:
          - name: a
            url: ${BASE}/api
            params: {key: "${KEY}", both: "${KEY}-${KEY}"}
            headers: {X-Token: "Bearer ${TOKEN}", X-Plain: plain}
            json: {nested: ["${KEY}"]}
            filename: "${PREFIX}-{index}{ext}"
          - name: b
            urls: ["${BASE}/one", "${BASE}/two"]
            data: "${KEY}"
    """
    env = {
        "OUT_DIR": str(tmp_path / "o"),
        "BASE": "http://127.0.0.1:8123",
        "KEY": "k",
        "TOKEN": "t0k",
        "PREFIX": "p",
    }
    job_file = load(write_job, text, **env)
    a, b = job_file.jobs
    assert job_file.output == tmp_path / "o" / "results"
    assert a.source.urls == ("http://127.0.0.1:8123/api",)
    assert a.params == (("key", "k"), ("both", "k-k"))
    assert dict(a.headers)["X-Token"] == "Bearer t0k"
    assert a.body == b'{"nested":["k"]}'
    assert a.filename == "p-{index}{ext}"
    assert b.source.urls == ("http://127.0.0.1:8123/one", "http://127.0.0.1:8123/two")
    assert b.body == b"k"
    # C3: a ${...}-filled header is a secret; so are these three by name
    assert a.secret_headers == frozenset({"x-token"})


def test_credential_headers_are_secret_by_name(write_job):
    text = f"""\
        defaults:
          headers: {{Authorization: Basic abc, X-From-Env: "${{V}}"}}
        jobs:
          - name: a
            url: {U}
            headers: {{cookie: c=1, Proxy-Authorization: Basic p, X-Plain: ok}}
    """
    [a] = load(write_job, text, V="v").jobs
    assert a.secret_headers == frozenset(
        {"authorization", "cookie", "proxy-authorization", "x-from-env"}
    )


def test_variables_come_from_the_given_environment_only(write_job):
    text = "jobs:\n  - name: a\n    url: ${ONLY_HERE}/x  # <-\n"
    assert load(write_job, text, ONLY_HERE="http://h").jobs[0].source.urls == ("http://h/x",)
    [found] = problems(write_job, text)
    assert found == "3: jobs[0].url: environment variable ONLY_HERE is not set"


# --- relative paths ------------------------------------------------------------------------------


def test_relative_paths_resolve_against_the_job_files_folder(tmp_path, monkeypatch):
    project = tmp_path / "project"
    (project / "lists").mkdir(parents=True)
    (project / "lists" / "urls.txt").write_text(f"{U}/a\n", encoding="utf-8")
    (project / "ca.pem").write_text("not used here\n", encoding="utf-8")
    (project / "job.yaml").write_text(
        "output: results\n"
        "jobs:\n"
        "  - name: bulk\n"
        "    urls_file: lists/urls.txt\n"
        "    verify: ca.pem\n",
        encoding="utf-8",
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    job_file = load_job_file(project / "job.yaml", environ={})
    [bulk] = job_file.jobs
    assert job_file.output.resolve() == project / "results"
    assert bulk.source.urls_file is not None
    assert bulk.source.urls_file.resolve() == project / "lists" / "urls.txt"
    assert isinstance(bulk.verify, Path)
    assert bulk.verify.resolve() == project / "ca.pem"
    # The default output is out/<stem> next to the job file too.
    (project / "other.yaml").write_text(f"jobs: [{{name: a, url: {U}}}]\n", encoding="utf-8")
    assert load_job_file(project / "other.yaml", {}).output.resolve() == project / "out" / "other"


def test_absolute_and_home_paths_are_kept(write_job, tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / "urls.txt").write_text(f"{U}/a\n", encoding="utf-8")
    text = f"output: {tmp_path / 'abs'}\njobs:\n  - name: a\n    urls_file: ~/urls.txt\n"
    job_file = load(write_job, text)
    assert job_file.output == tmp_path / "abs"
    assert job_file.jobs[0].source.urls_file == tmp_path / "home" / "urls.txt"


# --- bundled job files -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [*sorted((ROOT / "configs").glob("*.y*ml")), ROOT / "crawler" / "demo" / "demo.yaml"],
    ids=lambda p: str(p.relative_to(ROOT)),
)
def test_bundled_job_files_load_and_expand(path):
    base = "http://127.0.0.1:8765"
    job_file = load_job_file(path, environ={"CRAWLER_DEMO_URL": base})
    assert job_file.jobs
    tasks = list(interleave(job_file.jobs))
    assert tasks
    assert all(t.invalid is None for t in tasks)
    assert all(t.url_text.startswith(base + "/") for t in tasks)
    assert len({(t.job.name, t.key) for t in tasks}) == len(tasks)
    if path.name == "demo.yaml":
        by_job = {t.job.name: t for t in tasks}
        assert URL(by_job["get"].url_text).query.getall("tag") == ["a", "b"]
        assert by_job["post"].job.method == "POST"


def test_demo_job_names_its_missing_variable():
    with pytest.raises(ConfigError) as info:
        load_job_file(ROOT / "configs" / "demo.yaml", environ={})
    assert all("CRAWLER_DEMO_URL is not set" in p.message for p in info.value.problems)
    uses = (ROOT / "configs" / "demo.yaml").read_text(encoding="utf-8").count("${CRAWLER_DEMO_URL}")
    assert len(info.value.problems) == uses  # each use, on its own line


def test_params_and_form_values_are_sent_as_written(write_job):
    """YAML 1.1 reads `yes` as true and `1.50` as 1.5; a query value is the text written."""
    from crawler.config.jobfile import load_job_file

    path = write_job("""
        version: 1
        jobs:
          - name: a
            url: http://example.org/p
            params: {on: 1, answer: yes, price: 1.50, tags: [yes, no, 2]}
            form: {flag: off}
    """)
    [job] = load_job_file(path, {}).jobs
    assert job.params == (
        ("on", "1"),
        ("answer", "yes"),
        ("price", "1.50"),
        ("tags", "yes"),
        ("tags", "no"),
        ("tags", "2"),
    )
    assert job.body == b"flag=off"
