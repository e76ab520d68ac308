"""Text bodies end to end (C5): which codec decodes them, in which order, and what lands on
disk. Every body comes from a real local server with exactly the headers given here."""

from __future__ import annotations

import codecs
from pathlib import Path
from typing import Any

import pytest

from crawler.http import charset

from .conftest import Route, crawl

# Paragraph-length text in each language, as a page would carry it.
ZH = (
    "北京是中华人民共和国的首都，也是全国的政治中心和文化中心。这座城市有着三千多年的建城史"
    "和八百多年的建都史，历史文化遗产非常丰富。每年都有大量游客来到这里参观故宫、天坛、颐和园"
    "和长城等名胜古迹。近年来，北京的经济发展很快，交通也越来越方便，地铁线路已经覆盖了城市的"
    "大部分地区。"
)
JA = (
    "東京は日本の首都であり、世界でも有数の大都市です。江戸時代には徳川幕府が置かれ、政治の"
    "中心として栄えました。現在では、多くの企業の本社が集まり、経済や文化の中心地となって"
    "います。春には上野公園や隅田川沿いで桜が咲き、たくさんの人々が花見を楽しみます。電車や"
    "地下鉄の路線網が発達しているので、観光客も便利に移動することができます。"
)
KO = (
    "서울은 대한민국의 수도이며 정치, 경제, 사회, 문화의 중심지이다. 한강이 도시의 중앙을 "
    "가로질러 흐르고, 북한산과 남산 같은 아름다운 산들이 도시를 둘러싸고 있다. 조선 시대부터 "
    "육백 년이 넘는 긴 역사를 가지고 있어서 경복궁과 창덕궁 같은 궁궐이 지금도 남아 있다. "
    "지하철과 버스가 잘 발달되어 있어 시민들과 관광객들이 편리하게 이동할 수 있다."
)
RU = (
    "Москва — столица Российской Федерации, крупнейший по численности населения город страны "
    "и её важнейший политический, экономический и культурный центр. Город расположен на реке "
    "Москве в центре Восточно-Европейской равнины. В Москве находятся Кремль, Красная площадь, "
    "Большой театр и множество музеев, парков и университетов. Каждый год сюда приезжают "
    "миллионы туристов со всего мира."
)
FR = (
    "Le château se trouve au centre de la région, près d'une rivière où les pêcheurs passent "
    "leurs journées. À l'été, les élèves viennent découvrir l'histoire du lieu : la façade, "
    "les fenêtres sculptées et le jardin à la française. Après la visite, on peut goûter une "
    "crème brûlée ou un café très fort dans la brasserie située à côté de l'église. Les guides "
    "expliquent volontiers la légende du seigneur."
)
DE = (
    "Die Straße führt über die Brücke zum Schloss, wo früher der König wohnte. Im Frühling "
    "blühen dort überall Blumen, und die Bäume werfen lange Schatten auf den Rasen. Viele "
    "Besucher kommen am Wochenende, trinken einen Kaffee im Café und genießen die Aussicht über "
    "das Tal. Die Führungen dauern ungefähr eine Stunde und erklären die Geschichte der Grafen."
)
# Text whose one non-ASCII character exists in ISO-8859-15 but reads differently in Latin-1
# and windows-1252: only the declared codec turns byte 0xA4 into the euro sign.
EURO = "Le billet coûte 20 € au guichet, et le programme du festival est gratuit pour tous."

LANGUAGES = {
    "gb2312": ZH,
    "shift_jis": JA,
    "euc_kr": KO,
    "cp1251": RU,
    "latin-1": FR,
    "latin-1-de": DE,
}


def page(text: str, head: str = "") -> str:
    return (
        f"<!DOCTYPE html><html><head>{head}<title>Page</title></head>"
        f"<body><h1>News</h1><p>{text}</p></body></html>"
    )


def saved_text(out: Path, record: dict[str, Any]) -> str:
    """The saved file, which must be valid UTF-8."""
    return (out / record["path"]).read_bytes().decode("utf-8")


# --- no charset anywhere: detection ---------------------------------------------------------


async def test_undeclared_bodies_are_detected_and_saved_as_utf8(serve, write_job, tmp_path):
    routes: dict[str, Route] = {}
    expected: dict[str, str] = {}
    for label, text in LANGUAGES.items():
        codec = label.removesuffix("-de")
        plain = text.encode(codec)
        html = page(text).encode(codec)
        assert len(plain) >= 250
        assert charset.bom_codec(plain) is None
        routes[f"{label}.txt"] = (plain, {"Content-Type": "text/plain"})
        routes[f"{label}.html"] = (html, {"Content-Type": "text/html"})
        expected[f"{label}.txt"] = text
        expected[f"{label}.html"] = page(text)
    base = await serve(routes)
    summary, out, records = await crawl(
        tmp_path, write_job, [{"name": "pages", "urls": [base + name for name in routes]}]
    )
    assert summary["exit_code"] == 0
    assert len(records) == len(routes)
    for name, text in expected.items():
        record = records[base + name]
        assert record["ok"], record
        assert record["content_type"] == routes[name][1]["Content-Type"]  # no charset sent
        assert saved_text(out, record) == text, (name, record["charset"])
        # The manifest names a codec that decodes what the server sent.
        assert routes[name][0].decode(record["charset"]) == text, (name, record["charset"])
        assert record["path"].endswith(".txt" if name.endswith(".txt") else ".html")


async def test_detection_looks_past_a_long_ascii_head(serve, write_job, tmp_path):
    # A page that opens with more inline script than the detector's prefix.
    script = "<script>" + "var counter = 0; // keeps the page busy\n" * 2500 + "</script>"
    assert len(script) > charset.DETECT_PREFIX
    text = page(ZH, head=script)
    base = await serve({"long": (text.encode("gb2312"), {"Content-Type": "text/html"})})
    summary, out, records = await crawl(
        tmp_path, write_job, [{"name": "long", "url": base + "long"}]
    )
    assert summary["exit_code"] == 0
    record = records[base + "long"]
    assert record["ok"], record
    assert saved_text(out, record) == text
    assert codecs.lookup(record["charset"]).name in ("gb2312", "gbk", "gb18030")


async def test_nothing_to_go_on_is_utf8(serve, write_job, tmp_path):
    base = await serve(
        {
            "ascii": (b"plain ascii words, nothing else", {"Content-Type": "text/plain"}),
            "utf8": (page(FR + " " + RU).encode(), {"Content-Type": "text/html"}),
        }
    )
    _, out, records = await crawl(
        tmp_path, write_job, [{"name": "t", "urls": [base + "ascii", base + "utf8"]}]
    )
    assert records[base + "ascii"]["charset"] == "utf-8"
    assert saved_text(out, records[base + "ascii"]) == "plain ascii words, nothing else"
    assert records[base + "utf8"]["charset"] == "utf-8"
    assert saved_text(out, records[base + "utf8"]) == page(FR + " " + RU)


# --- the order: encoding, BOM, Content-Type, meta, detection --------------------------------


async def test_job_encoding_beats_everything(serve, write_job, tmp_path):
    body = page(EURO, head='<meta charset="utf-8">').encode("iso-8859-15")
    with_bom = codecs.BOM_UTF8 + "café".encode()
    base = await serve(
        {
            "declared": (body, {"Content-Type": "text/html; charset=windows-1252"}),
            "bom": (with_bom, {"Content-Type": "text/plain; charset=utf-8"}),
        }
    )
    _, out, records = await crawl(
        tmp_path,
        write_job,
        [
            {"name": "euro", "url": base + "declared", "encoding": "iso-8859-15"},
            {"name": "bom", "url": base + "bom", "encoding": "cp1252"},
            {"name": "utf8", "url": base + "bom?utf8", "encoding": "UTF8"},
        ],
    )
    euro = records[base + "declared"]
    assert euro["ok"], euro
    assert saved_text(out, euro) == page(EURO, head='<meta charset="utf-8">')
    assert codecs.lookup(euro["charset"]).name == "iso8859-15"
    bom = records[base + "bom"]
    assert bom["ok"], bom
    # The user asked for cp1252, so the BOM bytes are read as cp1252 too.
    assert saved_text(out, bom) == with_bom.decode("cp1252")
    assert codecs.lookup(bom["charset"]).name == "cp1252"
    # Forcing UTF-8 on a body with a UTF-8 BOM: the file holds the text, not the BOM.
    utf8 = records[base + "bom?utf8"]
    assert utf8["ok"], utf8
    assert (out / utf8["path"]).read_bytes() == "café".encode()
    assert utf8["charset"] == "utf-8"


@pytest.mark.parametrize("bom_codec", ["utf-8-sig", "utf-16", "utf-32"])
async def test_bom_beats_content_type(serve, write_job, tmp_path, bom_codec):
    text = page(RU)
    body = text.encode(bom_codec)  # these codecs write a BOM first
    assert charset.bom_codec(body) is not None
    base = await serve({"p": (body, {"Content-Type": "text/html; charset=iso-8859-1"})})
    _, out, records = await crawl(tmp_path, write_job, [{"name": "bom", "url": base + "p"}])
    record = records[base + "p"]
    assert record["ok"], record
    assert saved_text(out, record) == text  # no BOM left in the UTF-8 file
    assert body.decode(record["charset"]) == text


async def test_content_type_beats_meta(serve, write_job, tmp_path):
    text = page(EURO, head='<meta charset="windows-1252">')
    base = await serve(
        {"p": (text.encode("iso-8859-15"), {"Content-Type": "text/html; charset=ISO-8859-15"})}
    )
    _, out, records = await crawl(tmp_path, write_job, [{"name": "ct", "url": base + "p"}])
    record = records[base + "p"]
    # Transcoded, so the saved page's own (wrong) declaration says UTF-8 now.
    assert saved_text(out, record) == page(EURO, head='<meta charset="utf-8">')
    assert "€" in saved_text(out, record)
    assert codecs.lookup(record["charset"]).name == "iso8859-15"


@pytest.mark.parametrize(
    "meta",
    [
        '<meta charset="iso-8859-15">',
        "<meta charset=ISO-8859-15>",
        '<meta http-equiv="Content-Type" content="text/html; charset=iso-8859-15">',
    ],
)
async def test_meta_beats_detection(serve, write_job, tmp_path, meta):
    text = page(EURO, head=meta)
    body = text.encode("iso-8859-15")
    # Detection alone would read the euro sign as something else.
    assert charset.detect(body) != "iso8859-15"
    base = await serve({"p": (body, {"Content-Type": "text/html"})})
    _, out, records = await crawl(tmp_path, write_job, [{"name": "meta", "url": base + "p"}])
    record = records[base + "p"]
    # Decoded by the meta's codec, saved as UTF-8: the meta says so now, nothing else changed.
    assert saved_text(out, record) == page(
        EURO, head=meta.replace("iso-8859-15", "utf-8").replace("ISO-8859-15", "utf-8")
    )
    assert codecs.lookup(record["charset"]).name == "iso8859-15"


# --- wrong labels ---------------------------------------------------------------------------


async def test_wrong_or_unusable_labels_fall_back_to_detection(serve, write_job, tmp_path):
    cases: dict[str, tuple[str, str, str]] = {
        # name: (text, codec the body is in, Content-Type)
        "ct-utf8": (JA, "shift_jis", "text/plain; charset=utf-8"),
        "ct-ascii": (RU, "cp1251", "text/plain; charset=us-ascii"),
        "ct-unknown": (KO, "euc_kr", "text/plain; charset=x-no-such-charset"),
        "ct-base64": (ZH, "gb2312", "text/plain; charset=base64"),
        "ct-undefined": (RU, "cp1251", "text/plain; charset=undefined"),
        "meta-utf8": (page(ZH, head='<meta charset="utf-8">'), "gb2312", "text/html"),
    }
    routes = {
        name: (text.encode(codec), {"Content-Type": ctype})
        for name, (text, codec, ctype) in cases.items()
    }
    base = await serve(routes)
    summary, out, records = await crawl(
        tmp_path, write_job, [{"name": "wrong", "urls": [base + name for name in routes]}]
    )
    assert summary["exit_code"] == 0
    assert len(records) == len(cases)
    for name, (text, _, _) in cases.items():
        record = records[base + name]
        assert record["ok"], record
        assert saved_text(out, record) == text, name
        assert routes[name][0].decode(record["charset"]) == text, name


async def test_meta_utf16_on_an_ascii_page_means_utf8(serve, write_job, tmp_path):
    # A page cannot announce UTF-16 in ASCII; browsers read it as UTF-8.
    text = page(FR, head='<meta charset="utf-16">') + "!"
    base = await serve({"p": (text.encode(), {"Content-Type": "text/html"})})
    _, out, records = await crawl(tmp_path, write_job, [{"name": "m", "url": base + "p"}])
    record = records[base + "p"]
    assert record["charset"] == "utf-8"
    assert saved_text(out, record) == text


async def test_forced_encoding_that_cannot_decode_keeps_raw_bytes(serve, write_job, tmp_path):
    body = RU.encode("cp1251")
    base = await serve(
        {
            "ru": (body, {"Content-Type": "text/plain; charset=windows-1251"}),
            "fine": (RU.encode(), {"Content-Type": "text/plain"}),
        }
    )
    summary, out, records = await crawl(
        tmp_path,
        write_job,
        [
            {"name": "forced", "url": base + "ru", "encoding": "utf-8"},
            {"name": "other", "url": base + "fine", "encoding": "utf-8"},
        ],
    )
    assert summary["exit_code"] == 1
    record = records[base + "ru"]
    assert record["ok"] is False
    assert record["status"] == 200
    assert record["error"]["kind"] == "decode"
    assert record["path"], record
    kept = (out / record["path"]).read_bytes()
    assert kept == body
    assert record["bytes"] == len(body)
    assert record["path"].startswith("forced/")
    # The other request of the run is unaffected.
    assert records[base + "fine"]["ok"]
    assert saved_text(out, records[base + "fine"]) == RU


# --- the pure pieces, on inputs the end-to-end tests above do not reach ---------------------


def test_lookup_accepts_charsets_only():
    assert charset.lookup("Shift_JIS") == "shift_jis"
    assert charset.lookup("UHC") == "cp949"
    for name in ("base64", "zlib", "rot13", "idna", "undefined", "no-such", "", None):
        assert charset.lookup(name) is None, name
