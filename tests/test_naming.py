"""File names (C6): deterministic per request, unique within a job ignoring case, readable,
at most 200 characters a name, safe on Linux, macOS and Windows, and always inside the job
folder whatever a filename template or URL holds."""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import unicodedata
from pathlib import Path, PureWindowsPath

import pytest
import yaml
from yarl import URL

from crawler.config.jobfile import load_job_file
from crawler.tasks import naming
from crawler.tasks.expand import FetchTask, expand_job

from .conftest import CRAWLER_BIN, crawler_cli, read_manifest, run_job

KEY = "0123456789abcdef" * 2
OTHER_KEY = "fedcba9876543210" * 2
DEFAULT_NAME = re.compile(r"^[A-Za-z0-9._-]+-[0-9a-f]{16}\.[a-z0-9]+$")
WINDOWS_FORBIDDEN = set('<>:"\\|?*/')
RESERVED = {
    "con",
    "prn",
    "aux",
    "nul",
    "conin$",
    "conout$",
    *(f"{dev}{n}" for dev in ("com", "lpt") for n in "0123456789¹²³"),
}


def assert_safe_name(name: str) -> None:
    """One path component a user can keep on Linux, macOS and Windows alike."""
    assert name not in ("", ".", ".."), name
    assert len(name) <= 200, (len(name), name)
    assert len(name.encode()) <= 255, (len(name.encode()), name)
    for char in name:
        assert char not in WINDOWS_FORBIDDEN, (char, name)
        assert unicodedata.category(char) not in ("Cc", "Cf", "Cs", "Zl", "Zp"), (char, name)
    assert not name.endswith((".", " ")), name
    assert not name.startswith(" "), name
    assert name.split(".")[0].rstrip(" ").lower() not in RESERVED, name
    assert unicodedata.is_normalized("NFC", name), name


def assert_safe_relpath(rel: str) -> None:
    """A relative path inside the job folder, every component safe."""
    assert rel, "empty path"
    assert not rel.startswith("/"), rel
    windows = PureWindowsPath(rel)
    assert not windows.drive and not windows.root, rel
    for part in rel.split("/"):
        assert_safe_name(part)


def tasks_of(write_job, text: str) -> dict[str, list[FetchTask]]:
    """The expanded requests of a job file, by job name (no network)."""
    job_file = load_job_file(write_job(text), {})
    return {job.name: list(expand_job(job)) for job in job_file.jobs}


# --- identity and default names --------------------------------------------------------------


def test_request_identity_method_url_params_body(write_job):
    variants = {
        "a": 'url: "http://h.test/p", params: {x: 1, y: 2}',
        "b": 'url: "http://h.test/p?x=1&y=2"',
        "c": 'url: "http://h.test/p", params: {y: 2, x: 1}',
        "d": 'url: "http://h.test/p", params: {x: 1, y: 2}, method: POST',
        "e": 'url: "http://h.test/p", params: {x: 1, y: 2}, method: POST, json: {n: 1}',
        "f": 'url: "http://h.test/p", params: {x: 1, y: 2}, method: POST, json: {n: 2}',
        "g": 'url: "http://h.test/p", params: {x: 1, y: 2}, method: POST, data: \'{"n":1}\'',
        "h": 'url: "http://h.test/p", params: {tag: [a, b]}',
        "i": 'url: "http://h.test/p", params: {x: 1, y: 2}, headers: {X-Other: "1"}',
    }
    keys, urls = {}, {}
    for name, job in variants.items():
        [task] = tasks_of(write_job, f"version: 1\njobs:\n  - {{name: j, {job}}}\n")["j"]
        keys[name], urls[name] = task.key, task.url_text
    # params are expanded into the URL: the same URL written out is the same request
    assert urls["a"] == urls["b"] == "http://h.test/p?x=1&y=2"
    assert keys["a"] == keys["b"]
    # the order of params as written is part of the URL
    assert urls["c"] == "http://h.test/p?y=2&x=1"
    assert keys["c"] != keys["a"]
    # method and body are part of the identity, headers are not
    assert len({keys["a"], keys["d"], keys["e"], keys["f"]}) == 4
    assert keys["i"] == keys["a"]
    # a list repeats the key in one request
    assert urls["h"] == "http://h.test/p?tag=a&tag=b"
    # the same bytes on the wire are the same request, whichever key wrote them
    assert keys["g"] == keys["e"]
    # and different requests get different default names
    names = {naming.default_name(URL(urls[n]), keys[n], ".txt") for n in "acdef"}
    assert len(names) == 5


def test_identity_is_stable_across_loads(write_job):
    text = """
        version: 1
        jobs:
          - name: a
            urls: ["http://h.test/a", "http://h.test/b?q=1"]
            method: PUT
            form: {k: v}
    """
    first = [t.key for t in tasks_of(write_job, text)["a"]]
    second = [t.key for t in tasks_of(write_job, text)["a"]]
    assert first == second
    assert len(set(first)) == 2


async def test_default_names_identical_across_processes(write_job, tmp_path):
    """Names do not depend on anything that changes between runs (hash seeds, clocks)."""
    urls = tmp_path / "urls.txt"
    urls.write_text("".join(f"http://h{i % 3}.test/p/{i}?q={i}\n" for i in range(50)))
    job = write_job("""
        version: 1
        jobs:
          - {name: g, urls_file: urls.txt}
          - {name: p, urls_file: urls.txt, method: POST, json: {a: [1, 2]}, save: json}
    """)
    one = await crawler_cli("run", str(job), "--dry-run", env={"PYTHONHASHSEED": "1"})
    two = await crawler_cli("run", str(job), "--dry-run", env={"PYTHONHASHSEED": "2"})
    assert one.code == two.code == 0, one.stderr + two.stderr
    assert one.stdout == two.stdout
    names = [line.rsplit("/", 1)[1] for line in one.stdout.splitlines()]
    assert len(names) == 100
    assert len({n.lower() for n in names}) == 100


@pytest.mark.parametrize(
    ("url", "ext", "slug"),
    [
        ("http://Example.COM/Docs/Guide.html", ".html", "example.com_docs_guide.html"),
        ("http://example.com:8080/a/b/", ".txt", "example.com_8080_a_b"),
        ("http://example.com/", ".json", "example.com"),
        ("http://example.com/%00%01/../../etc/passwd", ".bin", "example.com_etc_passwd"),
        ("http://example.com/C:%5Cx/CON/nul.txt", ".txt", "example.com_c_x_con_nul.txt"),
        ("http://example.com/ünï/文字/😀", ".html", "example.com__n"),
        ("http://[::1]:8080/x", ".bin", "1_8080_x"),
    ],
)
def test_default_name_is_slug_hash_ext(url, ext, slug):
    name = naming.default_name(URL(url), KEY, ext)
    assert name == f"{slug}-{KEY[:16]}{ext}"
    assert DEFAULT_NAME.match(name), name
    assert_safe_name(name)


@pytest.mark.parametrize(
    "url",
    [
        "http://example.com/" + "x" * 1000,
        "http://example.com/" + "a/" * 500,
        "http://example.com/p?" + "q=" + "y" * 1000,
        "http://" + "sub." * 50 + "example.com/" + "%E2%80%AE" * 100,
        "http://example.com/" + "😀" * 150,
    ],
)
def test_default_name_short_for_long_urls(url):
    name = naming.default_name(URL(url), KEY, ".html")
    assert DEFAULT_NAME.match(name), name
    assert len(name) <= 120  # a short slug: readable, far below the 200 limit
    assert_safe_name(name)


def test_default_names_unique_ignoring_case(write_job):
    jobs = tasks_of(
        write_job,
        """
        version: 1
        jobs:
          - name: a
            urls:
              - http://h.test/Page
              - http://h.test/page
              - http://h.test/PAGE
              - http://h.test/page?x=1
              - http://h.test/page?X=1
              - http://H.TEST/page
        """,
    )
    names = [naming.default_name(t.url, t.key, ".html") for t in jobs["a"]]
    # the host is case-insensitive: the last URL is the second one
    assert jobs["a"][5].url_text == jobs["a"][1].url_text
    assert names[5] == names[1]
    distinct = names[:5]
    assert len({n.lower() for n in distinct}) == 5, distinct


@pytest.mark.parametrize(
    ("save", "content_type", "ext"),
    [
        ("json", "text/html", ".json"),
        ("json", None, ".json"),
        ("text", "text/html; charset=utf-8", ".html"),
        ("text", "application/xhtml+xml", ".html"),
        ("text", "text/plain", ".txt"),
        ("text", "TEXT/CSV", ".csv"),
        ("text", "application/xml", ".xml"),
        ("text", "application/atom+xml", ".xml"),
        ("text", None, ".txt"),
        ("bytes", "image/png", ".png"),
        ("bytes", "image/jpeg", ".jpg"),
        ("bytes", "application/pdf", ".pdf"),
        ("bytes", "application/json", ".json"),
        ("bytes", "application/octet-stream", ".bin"),
        ("bytes", "application/x-nothing-known", ".bin"),
        ("bytes", "../../etc/passwd", ".bin"),
        ("bytes", "", ".bin"),
        ("bytes", None, ".bin"),
    ],
)
def test_extension_from_save_mode_and_content_type(save, content_type, ext):
    assert naming.extension(save, content_type) == ext


# --- templates: pure functions ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("template", "url", "expected"),
    [
        ("{host}/{path}{ext}", "http://example.com/a/b", "example.com/a/b.txt"),
        ("{hash}{ext}", "http://example.com/a", f"{KEY[:16]}.txt"),
        ("{index}-{query}{ext}", "http://example.com/a?x=1&y=2", "7-x=1&y=2.txt"),
        ("pages/{index}{ext}", "http://example.com/", "pages/7.txt"),
        ("../../{path}", "http://example.com/x", "x"),
        ("/etc/passwd", "http://example.com/", "etc/passwd"),
        ("C:\\x", "http://example.com/", "C_/x"),
        ("\\\\server\\share\\{index}", "http://example.com/", "server/share/7"),
        ("{path}", "http://example.com/a/%2e%2e/%2E%2E/etc/passwd", "etc/passwd"),
        ("{path}", "http://example.com/a/..%2F..%2Fetc", "a/etc"),
        ("{query}", "http://example.com/?p=../../etc/passwd", "p=/etc/passwd"),
        ("{path}{ext}", "http://example.com/a%00b/c%01%1f%7fd", "a_b/c___d.txt"),
        ("{path}", "http://example.com/%3C%3E:%22%7C%3F*", "_______"),
        ("CON", "http://example.com/", "_CON"),
        ("nul.txt", "http://example.com/", "_nul.txt"),
        ("{path}", "http://example.com/aux/COM1.tar.gz/LPT9", "_aux/_COM1.tar.gz/_LPT9"),
        ("con .txt", "http://example.com/", "_con .txt"),
        ("x. . .", "http://example.com/", "x"),
        ("{path}", "http://example.com/a.%20./%20b%20/c...", "a/b/c"),
        ("{path}", "http://example.com/caf%65%CC%81", "café"),
        ("{path}", "http://example.com/%E2%80%AEtxt.exe", "_txt.exe"),
        ("{path}", "http://example.com/", "index.txt"),  # a folder's index, as wget names it
        (".", "http://example.com/", ""),
        ("../..", "http://example.com/", ""),
    ],
)
def test_render_template(template, url, expected):
    rendered = naming.render_template(template, URL(url), KEY, 7, ".txt")
    assert rendered == expected
    if rendered:
        assert_safe_relpath(rendered)


HOSTILE_TEMPLATES = [
    "{host}/{path}{ext}",
    "{path}",
    "{query}",
    "{path}/{query}{ext}",
    "../../../{path}",
    "/{path}/../../{query}",
    "/etc/passwd",
    "C:\\Windows\\{path}",
    "C:x{ext}",
    "\\\\?\\C:\\{query}",
    "{path}\x00{ext}",
    "a\x01\x1f\x7fb{ext}",
    '<>:"|?*{ext}',
    "CON",
    "nul.txt",
    "COM1{ext}",
    "LPT9/{path}",
    "{path}. . .",
    "{query}  ",
    "\u202e{path}\u200b",
    "ünïcødé/文字/😀{ext}",
    "{path}" * 20,
    "x" * 1000 + "{ext}",
    "d/" * 100 + "{hash}",
]
HOSTILE_URLS = [
    "http://example.com/../../etc/passwd",
    "http://example.com/%2e%2e/%2e%2e/etc/passwd",
    "http://example.com/a/..%2F..%2F..%2Fetc%2Fpasswd",
    "http://example.com/%00%01%1f/x",
    "http://example.com/C:%5CWindows%5Csystem32",
    "http://example.com//etc/passwd",
    "http://example.com/CON/nul.txt/aux.tar.gz",
    "http://example.com/a./b%20/c...",
    "http://example.com/%3C%3E:%22%7C%3F*",
    "http://example.com/" + "x" * 1000,
    "http://example.com/p?" + "q=" + "y" * 1000,
    "http://example.com/" + "a/" * 500,
    "http://example.com/" + "é" * 300,
    "http://example.com/" + "😀" * 150 + "?q=" + "😀" * 150,
    "http://example.com/ünïcødé/文字?q=ü&r=../..",
    "http://example.com/%E2%80%AEtxt.exe%E2%80%8B",
    "http://example.com/?a=%2e%2e%2f%2e%2e%2f&b=C:\\x",
    "http://example.com/",
]


@pytest.mark.parametrize("template", HOSTILE_TEMPLATES)
def test_hostile_templates_and_urls_stay_safe(template):
    for url in HOSTILE_URLS:
        rendered = naming.render_template(template, URL(url), KEY, 3, ".txt")
        if not rendered:
            continue  # the caller falls back to the default name
        assert_safe_relpath(rendered)
        hashed = naming.with_hash(rendered, KEY)
        assert_safe_relpath(hashed)
        assert hashed.lower() != rendered.lower()
        assert KEY[:16] in hashed.rsplit("/", 1)[-1]
        assert hashed.rsplit("/", 1)[0] == rendered.rsplit("/", 1)[0] or "/" not in rendered


@pytest.mark.parametrize(
    ("part", "expected"),
    [
        ("CON", "_CON"),
        ("con.txt", "_con.txt"),
        ("Con .txt", "_Con .txt"),
        ("nul", "_nul"),
        ("PRN.tar.gz", "_PRN.tar.gz"),
        ("aux.", "_aux"),
        ("COM9", "_COM9"),
        ("com¹.txt", "_com¹.txt"),
        ("LPT1", "_LPT1"),
        ("conin$", "_conin$"),
        ("console", "console"),
        ("com10", "com10"),
        ("x. . .", "x"),
        (" spaced ", "spaced"),
        ("...", ""),
        ("..", ""),
        (".", ""),
        (" ", ""),
        (".hidden", ".hidden"),
        ("a\x00b\tc\nd", "a_b_c_d"),
        ('a<b>c:d"e\\f|g?h*i', "a_b_c_d_e_f_g_h_i"),
        ("e\u0301", "é"),
        ("\u202eexe.txt", "_exe.txt"),
        ("zero\u200bwidth", "zero_width"),
        ("non\u00a0breaking", "non_breaking"),
    ],
)
def test_clean_component(part, expected):
    assert naming.clean_component(part) == expected


@pytest.mark.parametrize(
    ("part", "ext"),
    [
        ("a" * 1000, ""),
        ("a" * 1000 + ".txt", ".txt"),
        ("é" * 300 + ".html", ".html"),
        ("😀" * 300, ""),
        ("文" * 199 + ".json", ".json"),
        ("x." + "b" * 300, ""),
        ("b" * 300 + ". . .", ""),
    ],
)
def test_long_components_cut_to_200_keeping_extension(part, ext):
    cleaned = naming.clean_component(part)
    assert_safe_name(cleaned)
    assert len(cleaned.encode()) <= 200
    assert cleaned.endswith(ext)
    assert cleaned[:10] == part[:10]


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("page.html", f"page-{KEY[:16]}.html"),
        ("dir/sub/page.html", f"dir/sub/page-{KEY[:16]}.html"),
        ("noext", f"noext-{KEY[:16]}"),
        (".hidden", f".hidden-{KEY[:16]}"),
        ("a.tar.gz", f"a.tar-{KEY[:16]}.gz"),
    ],
)
def test_with_hash_before_the_extension(name, expected):
    assert naming.with_hash(name, KEY) == expected


@pytest.mark.parametrize(
    "name",
    ["a" * 200, "a" * 195 + ".html", "a." + "b" * 197, "é" * 100, "d/" + "😀" * 50 + ".txt"],
)
def test_with_hash_stays_within_limits(name):
    hashed = naming.with_hash(name, KEY)
    assert_safe_relpath(hashed)
    assert len(hashed.rsplit("/", 1)[-1].encode()) <= 200
    assert naming.with_hash(name, OTHER_KEY) != hashed


# --- real runs -------------------------------------------------------------------------------


def walk_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file())


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def check_output(out: Path, records: list[dict]) -> None:
    """Every saved file inside OUT/<job>/, named safely, one per manifest record."""
    for record in records:
        assert record["ok"], record
        job_dir = (out / record["job"]).resolve()
        path = (out / record["path"]).resolve()
        assert path.is_relative_to(job_dir), record["path"]
        assert path.is_file(), record["path"]
        assert sha256(path) == record["sha256"]
        assert_safe_relpath(path.relative_to(job_dir).as_posix())
    by_job: dict[str, list[str]] = {}
    for record in records:
        by_job.setdefault(record["job"], []).append(record["path"])
    for job, paths in by_job.items():
        assert len({p.lower() for p in paths}) == len(paths), paths  # never a shared file
        on_disk = walk_files(out / job)
        assert len(on_disk) == len(paths)
        for file in on_disk:
            assert file.resolve().is_relative_to((out / job).resolve())
            assert_safe_relpath(file.relative_to(out / job).as_posix())


def hostile_site_urls(base: str) -> list[str]:
    """URLs the test site answers with 200 whose paths and queries are hostile."""
    flaky = [
        "CON",
        "nul.txt",
        "aux.tar.gz",
        "%00%01%1f",
        "..%2F..%2F..%2Fetc%2Fpasswd",
        "C:%5CWindows%5Csystem32",
        "%3C%3E:%22%7C%3F*",
        "a.%20.",
        "trailing.",
        "x" * 1000,
        "%C3%BCn%C3%AF%F0%9F%98%80",
        "%F0%9F%98%80" * 150,
        "e%CC%81",
        "%C3%A9",
        "%E2%80%AEtxt.exe",
        "Case",
        "case",
    ]
    urls = [f"{base}/flaky/{seg}?codes=200" for seg in flaky]
    urls += [
        f"{base}/flaky/%2e%2e/%2E%2E/flaky/dots?codes=200",
        f"{base}/echo?p=../../etc/passwd&w=C:%5Cx&n=%00",
        f"{base}/echo?q=" + "y" * 1000,
        f"{base}/echo?q=%2e%2e%2f%2e%2e%2fetc",
        f"{base}/echo?p=/etc/passwd",
    ]
    return urls


async def test_hostile_templates_real_run_stays_in_job_folder(site, tmp_path):
    urls = hostile_site_urls(site.url)
    templates = [
        None,
        "{path}{ext}",
        "{host}/{path}/{query}{ext}",
        "{query}",
        "../../../{path}",
        "/etc/{path}/{query}",
        "C:\\{path}\\{index}",
        "{path}\x00\x01{ext}",
        '<>:"|?*/{index}',
        "CON",
        "nul.txt",
        "{path}. . .",
        "\u202e{path}",
        "ünïcødé/{path}",
        "d/" * 40 + "{hash}",
        "{query}" * 3,
    ]
    jobs = []
    for i, template in enumerate(templates):
        job: dict = {"name": f"t{i}", "urls": urls, "save": "bytes"}
        if template is not None:
            job["filename"] = template
        jobs.append(job)
    path = tmp_path / "work" / "job.yaml"
    path.parent.mkdir()
    path.write_text(yaml.safe_dump({"version": 1, "concurrency": 16, "jobs": jobs}))
    out = tmp_path / "work" / "out"

    done = await crawler_cli("run", str(path), "-o", str(out), "--no-progress")
    assert done.code == 0, done.stderr[-3000:]
    records = read_manifest(out)
    assert len(records) == len(urls) * len(templates)
    check_output(out, records)
    # nothing landed outside the output folder, and the output folder holds only jobs
    assert sorted(os.listdir(tmp_path)) == ["work"]
    assert sorted(os.listdir(tmp_path / "work")) == ["job.yaml", "out"]
    assert {p.name for p in out.iterdir()} == {
        ".crawler",
        "manifest.jsonl",
        *(f"t{i}" for i in range(len(templates))),
    }


async def test_template_collisions_get_the_hash(site, write_job, tmp_path):
    job = write_job(f"""
        version: 1
        concurrency: 4
        jobs:
          - name: same
            filename: "page{{ext}}"
            urls:
              - {site.url}/text?words=one
              - {site.url}/text?words=two
              - {site.url}/text?words=three
          - name: case
            filename: "{{query}}{{ext}}"
            urls:
              - {site.url}/text?words=Hello
              - {site.url}/text?words=hello
              - {site.url}/text?words=HELLO
          - name: dirs
            filename: "{{host}}/{{query}}/index{{ext}}"
            urls:
              - {site.url}/text?words=Up
              - {site.url}/text?words=up
    """)
    summary = await run_job(job)
    out = tmp_path / "out" / "job"
    assert summary["exit_code"] == 0
    records = read_manifest(out)
    assert len(records) == 8
    check_output(out, records)
    contents = {r["url"].split("words=")[1]: (out / r["path"]).read_text() for r in records}
    assert contents == {
        w: w for w in ("one", "two", "three", "Hello", "hello", "HELLO", "Up", "up")
    }
    same = sorted(r["path"] for r in records if r["job"] == "same")
    assert "same/page.txt" in same
    assert all(re.fullmatch(r"same/page(-[0-9a-f]{16})?\.txt", p) for p in same), same
    case = [r["path"] for r in records if r["job"] == "case"]
    assert len({p.lower() for p in case}) == 3
    assert sum(1 for p in case if re.search(r"-[0-9a-f]{16}\.txt$", p)) == 2
    dirs = [r["path"] for r in records if r["job"] == "dirs"]
    assert len({p.lower() for p in dirs}) == 2


async def test_default_names_same_in_every_run(site, write_job, tmp_path):
    job = write_job(f"""
        version: 1
        jobs:
          - name: a
            urls: ["{site.url}/json", "{site.url}/text?words=x", "{site.url}/bytes?size=10"]
            params: {{b: 2, a: 1}}
          - name: b
            method: POST
            url: {site.url}/echo
            json: {{k: v}}
            save: json
    """)
    out = tmp_path / "out" / "job"
    first = await run_job(job)
    second = await run_job(job, fresh=True)
    assert first["exit_code"] == second["exit_code"] == 0
    records = read_manifest(out)
    runs = {r["run"] for r in records}
    assert len(runs) == 2
    paths = {}
    for record in records:
        paths.setdefault(record["run"], {})[record["url"]] = record["path"]
    one, two = paths.values()
    assert one == two
    for path in one.values():
        _, name = path.split("/")
        assert DEFAULT_NAME.match(name), name
    assert one[f"{site.url}/json?b=2&a=1"].startswith("a/127.0.0.1_")
    assert one[f"{site.url}/echo"].endswith(".json")


async def test_file_and_folder_of_the_same_name(site, write_job, tmp_path):
    job = write_job(f"""
        version: 1
        concurrency: 1
        jobs:
          - name: t
            filename: "{{path}}"
            urls:
              - {site.url}/flaky/a?codes=200
              - {site.url}/flaky/a%2Fb?codes=200
              - {site.url}/flaky/c%2Fd?codes=200
              - {site.url}/flaky/c?codes=200
    """)
    done = await crawler_cli("run", str(job), "-o", str(tmp_path / "o"), "--no-progress")
    assert done.code == 0, done.stderr[-2000:]
    records = read_manifest(tmp_path / "o")
    assert len(records) == 4
    check_output(tmp_path / "o", records)


async def test_same_request_in_two_jobs_each_saved_also_on_resume(site, write_job, tmp_path):
    """Identity is per job: a request another job finished still gets its own file."""
    out = tmp_path / "o"
    first = write_job(f"""
        version: 1
        concurrency: 1
        jobs:
          - name: a
            urls: ["{site.url}/json", "{site.url}/slow?delay=30"]
            save: json
    """)
    proc = await asyncio.create_subprocess_exec(
        CRAWLER_BIN,
        "run",
        str(first),
        "-o",
        str(out),
        "--no-progress",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        for _ in range(300):
            if "/slow" in site.seen.paths():
                break
            await asyncio.sleep(0.05)
        assert "/slow" in site.seen.paths()
    finally:
        proc.kill()  # an unfinished run, as after kill -9
        await asyncio.wait_for(proc.wait(), 30)
    assert [r["job"] for r in read_manifest(out)] == ["a"]

    edited = write_job(f"""
        version: 1
        jobs:
          - {{name: a, url: "{site.url}/json", save: json}}
          - {{name: b, url: "{site.url}/json", save: json}}
    """)
    done = await crawler_cli("run", str(edited), "-o", str(out), "--no-progress")
    assert done.code == 0, done.stderr
    records = read_manifest(out)
    assert len({r["run"] for r in records}) == 1  # resumed
    assert sorted(r["job"] for r in records) == ["a", "b"]
    check_output(out, records)
    assert (out / records[1]["path"]).read_bytes() == (out / records[0]["path"]).read_bytes()
