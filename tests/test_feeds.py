"""tracker.sources.feeds.parse_feed: every feed dialect → FeedEntry, plain-text titles, UTC dates, errors."""

from __future__ import annotations

import csv
import functools
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tracker.core.errors import ParseError
from tracker.core.types import FeedEntry, ParsedFeed
from tracker.sources.feeds import parse_feed

RSS_TYPE = {"content-type": "application/rss+xml; charset=utf-8"}
ATOM_TYPE = {"content-type": "application/atom+xml"}


def parse(
    body: str | bytes, url: str = "https://feeds.example/feed", headers: dict[str, str] | None = None
) -> ParsedFeed:
    data = body.encode("utf-8") if isinstance(body, str) else body
    return parse_feed(data, url, RSS_TYPE if headers is None else headers)


def by_title(feed: ParsedFeed, title: str) -> FeedEntry:
    return next(e for e in feed.entries if e.title == title)


def rss(items: str, channel_title: str = "Harbour &amp; Hill Gazette") -> str:
    return f"""<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0" xmlns:content="http://purl.org/rss/1.0/modules/content/"
     xmlns:dc="http://purl.org/dc/elements/1.1/">
<channel><title>{channel_title}</title><link>https://gazette.example/</link>
<description>Local news from the harbour towns</description>
{items}
</channel></rss>"""


# --- RSS 2.0 --------------------------------------------------------------------------------

FERRY_ITEM = """
<item>
  <title>Ferry timetable changes for the winter</title>
  <link>https://gazette.example/news/ferry?utm_source=rss</link>
  <guid isPermaLink="false">gazette-ferry-1</guid>
  <pubDate>Tue, 03 Mar 2026 08:15:00 +0100</pubDate>
  <dc:creator>Ines Calloway</dc:creator>
  <description>The harbour authority changes the ferry timetable.</description>
  <content:encoded><![CDATA[<p>The harbour authority announced a new winter ferry timetable on Monday.</p>
    <p>Fares rise by ten cents from December.</p><script>track('ferry')</script>]]></content:encoded>
</item>"""


def test_rss20_entry_with_content_encoded() -> None:
    feed = parse(rss(FERRY_ITEM))
    assert feed.version == "rss20"
    assert feed.title == "Harbour & Hill Gazette"
    assert feed.bozo_reason is None
    (entry,) = feed.entries
    assert entry.link == "https://gazette.example/news/ferry?utm_source=rss"
    assert entry.guid == "gazette-ferry-1"
    assert entry.author == "Ines Calloway"
    assert entry.summary == "The harbour authority changes the ferry timetable."
    assert entry.content == (
        "The harbour authority announced a new winter ferry timetable on Monday.\n\n"
        "Fares rise by ten cents from December."
    )
    assert "track(" not in entry.content


def test_dates_are_timezone_aware_utc() -> None:
    (entry,) = parse(rss(FERRY_ITEM)).entries
    assert entry.published == datetime(2026, 3, 3, 7, 15, tzinfo=UTC)  # +0100 in the feed
    assert entry.published is not None and entry.published.tzinfo is UTC


@pytest.mark.parametrize(
    ("pub_date", "expected"),
    [
        ("Sat, 07 Feb 2026 23:30:00 -0500", datetime(2026, 2, 8, 4, 30, tzinfo=UTC)),
        ("Sat, 07 Feb 2026 23:30:00 GMT", datetime(2026, 2, 7, 23, 30, tzinfo=UTC)),
        ("2026-02-07T23:30:00+05:30", datetime(2026, 2, 7, 18, 0, tzinfo=UTC)),
    ],
)
def test_rss_dates_convert_to_utc(pub_date: str, expected: datetime) -> None:
    item = f"<item><title>Tide tables</title><link>https://gazette.example/tides</link><pubDate>{pub_date}</pubDate></item>"
    (entry,) = parse(rss(item)).entries
    assert entry.published == expected
    assert entry.published is not None and entry.published.tzinfo is UTC


def test_undated_entry_has_no_date() -> None:
    item = "<item><title>Tide tables</title><link>https://gazette.example/tides</link></item>"
    (entry,) = parse(rss(item)).entries
    assert entry.published is None


def test_markup_and_script_in_title_become_plain_text() -> None:
    items = """
<item><title><![CDATA[Council votes <script>steal()</script>on <em>bridge</em> repairs]]></title>
  <link>https://gazette.example/bridge</link></item>
<item><title>Ferry &lt;b&gt;fares&lt;/b&gt; &lt;script&gt;alert(1)&lt;/script&gt;rise</title>
  <link>https://gazette.example/fares</link></item>"""
    titles = [e.title for e in parse(rss(items)).entries]
    assert titles == ["Council votes on bridge repairs", "Ferry fares rise"]


def test_entity_laden_titles_are_decoded() -> None:
    items = """
<item><title>Caf&#233; owners &#8220;relieved&#8221; &#x2014; tax cut &amp; more</title>
  <link>https://gazette.example/cafe</link></item>
<item><title><![CDATA[Fish &amp; chips shop &quot;closes&quot;]]></title>
  <link>https://gazette.example/chips</link></item>"""
    titles = [e.title for e in parse(rss(items)).entries]
    assert titles == ["Café owners “relieved” — tax cut & more", 'Fish & chips shop "closes"']


def test_guid_is_permalink_stands_in_for_a_missing_link() -> None:
    items = """
<item><title>Lighthouse keeper retires</title><guid isPermaLink="true">https://gazette.example/lighthouse</guid>
  <description>After forty years.</description></item>
<item><title>Regatta postponed</title><guid isPermaLink="false">https://gazette.example/regatta</guid>
  <description>Wind.</description></item>"""
    feed = parse(rss(items))
    assert by_title(feed, "Lighthouse keeper retires").link == "https://gazette.example/lighthouse"
    regatta = by_title(feed, "Regatta postponed")
    assert regatta.link is None  # not a permalink: an id, not an address
    assert regatta.guid == "https://gazette.example/regatta"


def test_entries_without_link_guid_or_text_are_dropped() -> None:
    items = """
<item><description>No link and no guid.</description><title>Orphan</title></item>
<item><link>https://gazette.example/empty</link></item>
<item><title>Kept</title><link>https://gazette.example/kept</link></item>"""
    assert [e.title for e in parse(rss(items)).entries] == ["Kept"]


def test_a_feed_without_items_is_empty_not_an_error() -> None:
    feed = parse(rss(""))
    assert feed.entries == ()
    assert feed.version == "rss20"


# --- Atom 1.0 -------------------------------------------------------------------------------

ATOM = """<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom" xml:base="https://lantern.example/blog/">
  <title type="html">Lantern &lt;i&gt;Notes&lt;/i&gt;</title>
  <id>urn:lantern:notes</id><updated>2026-01-05T10:00:00Z</updated>
  <entry>
    <title>Night markets return to the river</title>
    <link rel="alternate" href="posts/night-markets"/>
    <link rel="enclosure" href="https://cdn.example/market.mp3" type="audio/mpeg"/>
    <id>urn:lantern:1</id>
    <updated>2026-01-05T10:00:00-05:00</updated>
    <author><name>Ravi Okonjo</name></author>
    <summary>Stalls reopen.</summary>
    <content type="html">&lt;p&gt;Stalls reopen along the river.&lt;/p&gt;
      &lt;p&gt;Vendors expect crowds.&lt;/p&gt;</content>
  </entry>
  <entry xml:base="/archive/">
    <title>An old lamp is found</title>
    <link href="lamp.html"/>
    <id>urn:lantern:2</id>
    <published>2025-12-31T23:30:00+02:00</published>
    <summary>A lamp in the attic.</summary>
  </entry>
</feed>"""


def test_atom10_with_xml_base_resolves_relative_links() -> None:
    # The document's xml:base wins over the URL it was fetched from.
    feed = parse(ATOM, url="https://mirror.example/feeds/lantern.atom", headers=ATOM_TYPE)
    assert feed.version == "atom10"
    assert feed.title == "Lantern Notes"
    first = by_title(feed, "Night markets return to the river")
    assert first.link == "https://lantern.example/blog/posts/night-markets"
    assert first.guid == "urn:lantern:1"
    assert first.author == "Ravi Okonjo"
    assert first.published == datetime(2026, 1, 5, 15, 0, tzinfo=UTC)
    assert first.content == "Stalls reopen along the river.\n\nVendors expect crowds."
    lamp = by_title(feed, "An old lamp is found")
    assert lamp.link == "https://lantern.example/archive/lamp.html"  # nested xml:base
    assert lamp.published == datetime(2025, 12, 31, 21, 30, tzinfo=UTC)


def test_atom10_relative_links_without_xml_base_resolve_against_the_feed_url() -> None:
    body = ATOM.replace(' xml:base="https://lantern.example/blog/"', "").replace(' xml:base="/archive/"', "")
    feed = parse(body, url="https://lantern.example/notes/feed.atom", headers=ATOM_TYPE)
    assert (
        by_title(feed, "Night markets return to the river").link == "https://lantern.example/notes/posts/night-markets"
    )
    assert by_title(feed, "An old lamp is found").link == "https://lantern.example/notes/lamp.html"


# --- RSS 1.0 (RDF) and RSS 0.91 ---------------------------------------------------------------

RDF = """<?xml version="1.0"?>
<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" xmlns="http://purl.org/rss/1.0/"
         xmlns:dc="http://purl.org/dc/elements/1.1/">
  <channel rdf:about="https://orchard.example/">
    <title>Orchard Weekly</title><link>https://orchard.example/</link><description>Fruit news</description>
    <items><rdf:Seq><rdf:li rdf:resource="https://orchard.example/a/1"/></rdf:Seq></items>
  </channel>
  <item rdf:about="https://orchard.example/a/1">
    <title>Apple harvest starts early</title><link>https://orchard.example/a/1</link>
    <description>A warm spring brings the harvest forward.</description>
    <dc:date>2026-09-01T06:00:00Z</dc:date><dc:creator>Mara Teague</dc:creator>
  </item>
</rdf:RDF>"""


def test_rss10_rdf() -> None:
    feed = parse(RDF, headers={"content-type": "application/rdf+xml"})
    assert feed.version == "rss10"
    (entry,) = feed.entries
    assert entry.link == "https://orchard.example/a/1"
    assert entry.title == "Apple harvest starts early"
    assert entry.author == "Mara Teague"
    assert entry.published == datetime(2026, 9, 1, 6, 0, tzinfo=UTC)
    assert entry.summary == "A warm spring brings the harvest forward."


RSS091 = """<?xml version="1.0"?>
<!DOCTYPE rss PUBLIC "-//Netscape Communications//DTD RSS 0.91//EN"
  "http://my.netscape.com/publish/formats/rss-0.91.dtd">
<rss version="0.91"><channel>
  <title>Quarry Bulletin</title><link>https://quarry.example/</link><description>Stone</description>
  <language>en-us</language>
  <item><title>Blasting schedule</title><link>https://quarry.example/blast</link>
    <description>Tuesdays only, from ten until noon.</description></item>
</channel></rss>"""


def test_rss091() -> None:
    feed = parse(RSS091, headers={"content-type": "text/xml"})
    assert feed.version.startswith("rss091")
    (entry,) = feed.entries
    assert (entry.title, entry.link) == ("Blasting schedule", "https://quarry.example/blast")
    assert entry.summary == "Tuesdays only, from ten until noon."


# --- malformed input -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "items",
    [
        # an HTML entity that XML does not define
        "<item><title>Grain prices&nbsp;up</title><link>https://mill.example/grain</link></item>"
        "<item><title>Flour news</title><link>https://mill.example/flour</link></item>",
        # a stray unescaped ampersand
        "<item><title>Flour & water</title><link>https://mill.example/flour</link></item>"
        "<item><title>Grain prices up</title><link>https://mill.example/grain</link></item>",
    ],
)
def test_bozo_feed_still_yields_entries(items: str) -> None:
    feed = parse(rss(items, channel_title="Mill News"))
    assert feed.bozo_reason  # the reason is kept ...
    links = sorted(e.link or "" for e in feed.entries)  # ... and the entries are used
    assert links == ["https://mill.example/flour", "https://mill.example/grain"]
    assert "Grain prices up" in [e.title.replace("\xa0", " ") for e in feed.entries]


def test_html_page_is_a_parse_error() -> None:
    page = "<!DOCTYPE html><html><head><title>Welcome</title></head><body><p>Hello &amp; goodbye</p></body></html>"
    with pytest.raises(ParseError, match="not a usable feed"):
        parse(page, headers={"content-type": "text/html; charset=utf-8"})


def test_html_page_without_headers_is_a_parse_error() -> None:
    with pytest.raises(ParseError):
        parse("<html><head><title>Moved</title></head><body>Moved here.</body></html>", headers={})


@pytest.mark.parametrize("body", [b"", b"   \n\t ", b"\n"])
def test_empty_body_is_a_parse_error(body: bytes) -> None:
    with pytest.raises(ParseError, match="empty"):
        parse(body)


def test_plain_text_is_a_parse_error() -> None:
    with pytest.raises(ParseError):
        parse(b"this is not a feed at all", headers={"content-type": "text/plain"})


def test_wellformed_feed_without_headers_is_not_bozo() -> None:
    feed = parse_feed(rss(FERRY_ITEM).encode(), "https://gazette.example/rss.xml")
    assert feed.bozo_reason is None


def test_wellformed_empty_feed_without_headers_is_not_an_error() -> None:
    feed = parse_feed(rss("").encode(), "https://gazette.example/rss.xml")
    assert feed.entries == ()


# --- encodings ---------------------------------------------------------------------------------------


LATIN1_RSS = """<?xml version="1.0"?>
<rss version="2.0"><channel><title>Caf\u00e9 Boul\u00e9 Nouvelles</title><link>https://cafe.example/</link>
<description>d</description>
<item><title>Cr\u00e8me br\u00fbl\u00e9e \u00e0 la carte d\u00e8s lundi</title><link>https://cafe.example/1</link>
<description>Le g\u00e2teau co\u00fbte cinq francs.</description></item></channel></rss>"""


def test_charset_given_only_in_the_http_header() -> None:
    body = LATIN1_RSS.encode("latin-1")
    with pytest.raises(UnicodeDecodeError):
        body.decode("utf-8")  # the bytes really are not UTF-8
    feed = parse(body, headers={"content-type": "application/rss+xml; charset=iso-8859-1"})
    assert feed.title == "Café Boulé Nouvelles"
    (entry,) = feed.entries
    assert entry.title == "Crème brûlée à la carte dès lundi"
    assert entry.summary == "Le gâteau coûte cinq francs."


def test_charset_in_xml_declaration() -> None:
    body = LATIN1_RSS.replace('<?xml version="1.0"?>', '<?xml version="1.0" encoding="iso-8859-1"?>')
    feed = parse(body.encode("latin-1"), headers={"content-type": "application/rss+xml"})
    assert feed.entries[0].title == "Crème brûlée à la carte dès lundi"


# --- corpus ------------------------------------------------------------------------------------------

CORPUS_FEEDS = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "feeds"


def corpus_feed_files() -> list[str]:
    """Relative paths of every feed document in the corpus (empty when it is absent)."""
    if not CORPUS_FEEDS.is_dir():
        return []
    return sorted(
        str(p.relative_to(CORPUS_FEEDS))
        for folder in ("wellformed", "illformed", "real")
        for p in (CORPUS_FEEDS / folder).rglob("*")
        if p.is_file() and p.name != "MANIFEST.tsv" and "expected" not in p.parts
    )


@functools.cache
def simulated_headers(feeds: Path) -> dict[str, dict[str, str]]:
    """Path → the HTTP headers feedparser's own tests simulate for it (MANIFEST.tsv)."""
    out: dict[str, dict[str, str]] = {}
    with (feeds / "MANIFEST.tsv").open(encoding="utf-8", newline="") as fh:
        for row in csv.DictReader(fh, delimiter="\t", quoting=csv.QUOTE_NONE):
            name, _, value = (row.get("simulated_http_headers") or "").partition(":")
            if name.strip():
                out[row["path"]] = {name.strip(): value.strip()}
    return out


@pytest.mark.corpus
@pytest.mark.parametrize("rel", corpus_feed_files())
def test_corpus_feed_parses_or_raises_parse_error(corpus: Path, rel: str) -> None:
    feeds = corpus / "feeds"
    path = feeds / rel
    headers = simulated_headers(feeds).get(rel)
    try:
        feed = parse_feed(path.read_bytes(), f"http://example.com/{path.name}", headers)
    except ParseError:
        return
    assert all(isinstance(e, FeedEntry) for e in feed.entries)
    for entry in feed.entries:
        assert entry.link or entry.guid
        assert entry.published is None or entry.published.tzinfo is UTC


def expected_items(path: Path) -> list[dict[str, object]]:
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")  # jornal-de-noticias' expected JSON is stored in ISO-8859-1
    data = json.loads(text)
    items: list[dict[str, object]] = data["feed"]["items"]
    return items


RSS_PARSER_EXPECTED = [
    "content-encoded", "craigslist-rdf", "feedburner-google-ads-blog", "github-releases-gulp",
    "google-testing-blog", "guardian", "heise-developer", "jornal-de-noticias-iso8859-1", "reddit-home",
    "science-rss1", "uol-noticias",
]  # fmt: skip


@pytest.mark.corpus
def test_every_expected_json_is_covered(corpus: Path) -> None:
    found = sorted(
        p.name.removesuffix(".rss-parser.json") for p in (corpus / "feeds/real/rss-parser/expected").iterdir()
    )
    assert found == sorted(RSS_PARSER_EXPECTED)


@pytest.mark.corpus
@pytest.mark.parametrize("name", RSS_PARSER_EXPECTED)
def test_real_feed_entry_count_matches_rss_parser(corpus: Path, name: str) -> None:
    folder = corpus / "feeds/real/rss-parser"
    (source,) = [p for p in folder.iterdir() if p.is_file() and p.stem == name]
    expected = expected_items(folder / "expected" / f"{name}.rss-parser.json")
    feed = parse_feed(source.read_bytes(), f"https://example.com/{source.name}")
    assert sum(1 for e in feed.entries if e.link) == len(expected)
    assert sum(1 for item in expected if item.get("link")) == len(expected)
