"""`save: text` of a transcoded page (C5): the page's own charset declaration (<meta charset>,
<meta http-equiv=Content-Type>, an XML declaration) is rewritten to UTF-8, so a browser opening
the saved UTF-8 file reads it right; everything else is kept as decoded. Bodies come from real
local servers with exactly the headers given here."""

from __future__ import annotations

import json
import re

from .conftest import crawl, crawler_cli, read_manifest

CAFE = "Un café crème au comptoir, s'il vous plaît. Voilà l'addition, déjà payée."
ZH = "北京是中华人民共和国的首都，也是全国的政治中心和文化中心。"


def page(text: str, head: str = "", tail: str = "") -> str:
    return (
        f"<!DOCTYPE html><html><head>{head}<title>Page</title></head>"
        f"<body><p>{text}</p>{tail}</body></html>"
    )


def declared_charset(data: bytes) -> str:
    """The charset a browser's prescan finds in the first 1024 bytes (simplified)."""
    match = re.search(
        rb"""<meta[^>]+?charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", data[:1024], re.I
    )
    assert match, data[:1024]
    return match.group(1).decode().lower()


async def test_latin1_page_saved_as_utf8_declares_utf8(aiohttp_server, tmp_path):
    """The user's report: the saved file said iso-8859-1 in its meta but held UTF-8."""
    from aiohttp import web

    text = page(CAFE, head='<meta charset="iso-8859-1">')
    latin1 = text.encode("iso-8859-1")
    assert "café".encode("iso-8859-1") in latin1
    utf8_page = page(CAFE, head='<meta charset="utf-8">').encode()

    async def latin(request: web.Request) -> web.Response:
        return web.Response(body=latin1, headers={"Content-Type": "text/html"})

    async def utf8(request: web.Request) -> web.Response:
        return web.Response(body=utf8_page, headers={"Content-Type": "text/html; charset=utf-8"})

    app = web.Application()
    app.router.add_get("/latin.html", latin)
    app.router.add_get("/utf8.html", utf8)
    server = await aiohttp_server(app)
    base = str(server.make_url("")).rstrip("/")
    job = tmp_path / "job.yaml"
    job.write_text(
        json.dumps(
            {
                "version": 1,
                "jobs": [{"name": "p", "urls": [f"{base}/latin.html", f"{base}/utf8.html"]}],
            }
        ),
        encoding="utf-8",
    )
    done = await crawler_cli("run", str(job), "-o", str(tmp_path / "out"))
    assert done.code == 0, done.stderr
    out = tmp_path / "out"
    records = {r["url"].rsplit("/", 1)[1]: r for r in read_manifest(out)}

    latin_record = records["latin.html"]
    assert latin_record["ok"], latin_record
    assert latin_record["charset"] == "iso8859-1"  # the codec used to decode, as before
    data = (out / latin_record["path"]).read_bytes()
    saved = data.decode("utf-8")  # valid UTF-8
    assert "café" in saved
    assert declared_charset(data) == "utf-8"
    # Only the declaration changed.
    assert saved == text.replace('charset="iso-8859-1"', 'charset="utf-8"')

    # A UTF-8 page is saved exactly as received.
    utf8_record = records["utf8.html"]
    assert utf8_record["charset"] == "utf-8"
    assert (out / utf8_record["path"]).read_bytes() == utf8_page


async def test_both_meta_forms_any_case(serve, write_job, tmp_path):
    http_equiv = page(
        ZH, head='<META HTTP-EQUIV="Content-Type" CONTENT="text/html; CHARSET=GB2312">'
    )
    both = page(
        CAFE,
        head="<meta charset=Windows-1252>"
        "<meta http-equiv='content-type' content='text/html;charset=\"windows-1252\"'>",
    )
    base = await serve(
        {
            "zh": (http_equiv.encode("gb2312"), {"Content-Type": "text/html; charset=gb2312"}),
            "both": (both.encode("cp1252"), {"Content-Type": "text/html"}),
        }
    )
    _, out, records = await crawl(
        tmp_path, write_job, [{"name": "m", "urls": [base + "zh", base + "both"]}]
    )
    zh = records[base + "zh"]
    assert zh["charset"] == "gb2312"
    data = (out / zh["path"]).read_bytes()
    assert data.decode("utf-8") == http_equiv.replace("CHARSET=GB2312", "CHARSET=utf-8")
    assert declared_charset(data) == "utf-8"
    both_record = records[base + "both"]
    assert both_record["charset"] == "cp1252"
    saved = (out / both_record["path"]).read_bytes().decode("utf-8")
    assert saved == both.replace("Windows-1252", "utf-8").replace("windows-1252", "utf-8")


async def test_only_the_head_is_rewritten(serve, write_job, tmp_path):
    """The declaration in the head is rewritten; the same text far into a large body (here in
    a script) is content and stays as it was."""
    late = "<script>var tag = '<meta charset=\"iso-8859-1\">';</script>"
    text = page(CAFE * 2000, head='<meta charset="iso-8859-1">', tail=late)
    body = text.encode("iso-8859-1")
    assert len(body) > 64 * 1024  # decoded off the event loop
    base = await serve({"big": (body, {"Content-Type": "text/html; charset=iso-8859-1"})})
    _, out, records = await crawl(tmp_path, write_job, [{"name": "big", "url": base + "big"}])
    record = records[base + "big"]
    assert record["ok"], record
    saved = (out / record["path"]).read_bytes().decode("utf-8")
    assert saved == text.replace('charset="iso-8859-1"', 'charset="utf-8"', 1)
    assert saved.endswith(late + "</body></html>")


async def test_xml_declaration_says_utf8(serve, write_job, tmp_path):
    xml = f'<?xml version="1.0" encoding="iso-8859-1"?>\n<menu><item>{CAFE}</item></menu>\n'
    body = xml.encode("iso-8859-1")
    base = await serve(
        {
            "menu.xml": (body, {"Content-Type": "application/xml; charset=iso-8859-1"}),
            "utf8.xml": (
                xml.replace("iso-8859-1", "UTF-8").encode(),
                {"Content-Type": "text/xml; charset=utf-8"},
            ),
        }
    )
    _, out, records = await crawl(
        tmp_path, write_job, [{"name": "x", "urls": [base + "menu.xml", base + "utf8.xml"]}]
    )
    record = records[base + "menu.xml"]
    assert record["ok"], record
    assert record["path"].endswith(".xml")
    assert record["charset"] == "iso8859-1"
    saved = (out / record["path"]).read_bytes().decode("utf-8")
    assert saved == xml.replace('encoding="iso-8859-1"', 'encoding="UTF-8"')
    utf8 = records[base + "utf8.xml"]
    assert (out / utf8["path"]).read_bytes() == xml.replace("iso-8859-1", "UTF-8").encode()


async def test_plain_text_is_not_rewritten(serve, write_job, tmp_path):
    """Not HTML or XML: text that looks like a declaration is content, kept as decoded."""
    text = f'Put <meta charset="iso-8859-1"> in the head. {CAFE}'
    base = await serve(
        {"t": (text.encode("iso-8859-1"), {"Content-Type": "text/plain; charset=iso-8859-1"})}
    )
    _, out, records = await crawl(tmp_path, write_job, [{"name": "t", "url": base + "t"}])
    record = records[base + "t"]
    assert (out / record["path"]).read_bytes() == text.encode()
