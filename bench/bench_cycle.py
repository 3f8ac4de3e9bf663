"""One poll cycle against the naive serial script and the CPU floor (issue 16); prints tables.

The workload: N feeds (RSS 2.0) x M new articles each, all on one loopback host that
answers every request (feeds and article pages) after a fixed latency. The site runs in
a process of its own (``--serve``, a ThreadingHTTPServer, so the sleeps overlap) and
pre-renders everything before it says it is ready. Articles are generated news pages
(navigation, cookie banner, related links, newsletter box, comments, footer around
500-900 words of text) built from templates and random word choices; about one in five
is about a topic of ``rules/`` (Ford and a Chinese partner, GM against Chinese carmakers,
Trump and Xi, Chinese carmakers entering North America, unions and lawmakers opposing
them), so matching, the topic model and story grouping do real work. Each article reports
an event: most have one of their own (coined names of people, places and organisations,
so that unrelated articles share few rare words, as in real news), some re-report an
event of another feed, so stories of several items form; no two pages have the same text.
Feeds answer conditional GETs (ETag / Last-Modified) with 304. Bodies are sent
uncompressed, to keep the site's own CPU use (it shares the machine) small.

Cases, in the order they run:

- tracker, cold cycle: a fresh SQLite database in a temporary directory, one cycle through
  the library (``open_store`` + ``poll_once``, as ``bench/bench_poll.py`` does), timed
  wall-clock from ``poll_once`` (rules, extraction workers' start-up included); peak RSS
  of this process and of its largest child (an extraction worker).
- tracker, warm cycle: ``python -m tracker --config FILE poll --once`` over the same,
  unchanged feeds (every feed answers 304), as a subprocess, process start included.
- CPU floor: feedparser on every feed body and trafilatura.extract on every page body,
  in this process, bodies already in memory, CPU seconds (``time.process_time``); and
  that divided by two for a two-core machine.
- naive serial script: for each feed, httpx GET, feedparser.parse, then for each entry
  httpx GET and trafilatura.extract, one thing at a time (one httpx.Client, so it keeps
  its connection alive). At least requests x latency plus the floor's CPU time (over two
  minutes for the full workload); ``--skip-naive`` leaves it out.
- with ``--profile``: one more cold cycle (another fresh database) under cProfile, which
  sees the main thread only; the tracker's functions by cumulative time and every
  function by own time. Blocking calls that release the GIL (queue waits, sqlite3, pipe
  writes, hashing) count the time spent waiting to get it back.

Every feed is on one host, so the tracker's per-host politeness budget is lifted in the
config the bench writes: ``per_host_concurrency`` = ``concurrency`` and
``per_host_per_minute = 0``. Overall concurrency stays at the tracker's default unless
``--concurrency`` says otherwise; note that it bounds the cycle too (``requests x latency
/ concurrency``, printed as the latency floor).

Usage:
    python bench/bench_cycle.py                  # 200 feeds x 10, 50 ms, naive included
    python bench/bench_cycle.py --skip-naive --profile
    python bench/bench_cycle.py --quick          # 20 feeds x 10, a smoke run
"""

from __future__ import annotations

import argparse
import email.utils
import hashlib
import html
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
SITE = "The Harbour Courier"

# -- text -------------------------------------------------------------------------------------
# Word banks for generated articles. Everything here is invented for this benchmark.

# fmt: off
FIRST = ("Anna", "Marcus", "Priya", "Tomas", "Leila", "Daniel", "Grace", "Oskar", "Mei", "Rafael", "Ingrid",
         "Samuel", "Nadia", "Victor", "Helen", "Jonah", "Carmen", "Felix", "Aisha", "Peter", "Lucia", "Omar",
         "Ruth", "Stefan", "Yuki", "Connor", "Elena", "Hamid", "Sofia", "Martin")  # fmt: skip
LAST = ("Lindqvist", "Okafor", "Bramwell", "Castellano", "Haddad", "Nakamura", "Petrov", "Whitcombe", "Farrow",
        "Delacroix", "Mbeki", "Sorensen", "Albright", "Kowalski", "Ramirez", "Tanaka", "O'Neill", "Varga", "Eklund",
        "Moreau", "Abernathy", "Quigley", "Rasmussen", "Thorne", "Iqbal", "Bianchi", "Hollis", "Szabo")  # fmt: skip
# Names of people, places and organisations are coined per event from these syllables, so that
# (as in real news) the rare words of one event are its own and unrelated articles share little.
SYLLABLES = ("bra", "kel", "dor", "vin", "mar", "tas", "lo", "quin", "sef", "ul", "ren", "ost", "ha", "zel", "tor",
             "mi", "nav", "eth", "gar", "pol", "sku", "dre", "van", "ix", "ber", "cal", "fen", "jor", "lum", "wes",
             "ad", "rin", "cho", "tep", "sal", "mur", "vey", "gol", "nis", "part")  # fmt: skip
PLACE_ENDS = ("ton", "ford", "by", "mouth", "field", "bridge", " Falls", " Harbour", " Vale", "stead", " Cross")
ORG_ENDS = {
    "business": ("Holdings", "Logistics", "Bank", "Foods", "Retail", "Insurance", "Brewing", "Semiconductors"),
    "politics": ("District Council", "Party", "Civic Alliance", "Ratepayers' Association"),
    "world": ("Relief Agency", "Fisheries Council", "Border Commission", "Development Bank"),
    "tech": ("Software", "Networks", "Cloud", "Devices", "Labs"),
    "science": ("Institute", "Observatory", "Research Station", "Marine Laboratory"),
    "sports": ("Mariners", "Rovers", "Harriers", "Athletic", "United", "Rowing Club"),
    "autos": ("Motors", "Components", "Auto Parts", "Dealer Group"),
}
DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December")  # fmt: skip

# Per section: who acts and who reacts (common words), and the nouns an event is about: each
# event takes a few and builds its subjects, problems and remedies from them, so that two
# unrelated events rarely share their distinctive words.
BANKS: dict[str, dict[str, tuple[str, ...]]] = {
    "business": {
        "actor": (
            "the retailer",
            "the bank",
            "the port authority",
            "the logistics group",
            "the chipmaker",
            "the insurer",
            "the brewer",
            "the airline",
        ),
        "group": ("shareholders", "suppliers", "analysts", "employees", "small investors", "creditors"),
        "nouns": (
            "warehouse",
            "freight",
            "pension",
            "mortgage",
            "franchise",
            "bakery",
            "brewery",
            "textile",
            "packaging",
            "forklift",
            "container",
            "grocery",
            "payroll",
            "invoice",
            "timber",
            "cement",
            "fertiliser",
            "copper",
            "cotton",
            "coffee",
            "shipping",
            "warranty",
            "leasing",
            "furniture",
            "jewellery",
            "catering",
            "laundry",
            "printing",
            "plastics",
            "cocoa",
        ),
    },
    "politics": {
        "actor": (
            "the city council",
            "the finance committee",
            "the opposition party",
            "the regional governor",
            "the transport ministry",
            "the ethics panel",
            "the mayor's office",
        ),
        "group": ("residents", "councillors", "campaigners", "local businesses", "teachers", "voters"),
        "nouns": (
            "parking",
            "housing",
            "tram",
            "library",
            "bypass",
            "allotment",
            "school",
            "bus",
            "cycleway",
            "pothole",
            "recycling",
            "streetlight",
            "playground",
            "swimming",
            "cemetery",
            "footbridge",
            "marketplace",
            "ferry",
            "lido",
            "hospice",
            "zoning",
            "polling",
            "referendum",
            "sewer",
            "kerbside",
            "childcare",
            "libraries",
            "tenancy",
            "graffiti",
            "roundabout",
        ),
    },
    "world": {
        "actor": (
            "the foreign ministry",
            "the regional forum",
            "the aid agency",
            "the border commission",
            "the central bank",
            "the election observers",
        ),
        "group": ("diplomats", "aid workers", "fishing communities", "opposition leaders", "farmers", "observers"),
        "nouns": (
            "grain",
            "fishing",
            "refugee",
            "drought",
            "ceasefire",
            "vaccine",
            "fuel",
            "currency",
            "pipeline",
            "dam",
            "convoy",
            "famine",
            "militia",
            "embassy",
            "mining",
            "irrigation",
            "monsoon",
            "customs",
            "visa",
            "cholera",
            "landmine",
            "hostage",
            "locust",
            "earthquake",
            "cyclone",
            "smuggling",
            "nomad",
            "salt",
            "ferry",
            "railway",
        ),
    },
    "tech": {
        "actor": (
            "the software maker",
            "the data protection regulator",
            "the handset maker",
            "the telecoms watchdog",
            "the cloud provider",
            "the network operator",
        ),
        "group": ("users", "developers", "privacy advocates", "network engineers", "rival vendors", "customers"),
        "nouns": (
            "broadband",
            "router",
            "chatbot",
            "encryption",
            "firmware",
            "smartphone",
            "satellite",
            "datacentre",
            "password",
            "browser",
            "drone",
            "headset",
            "spam",
            "ransomware",
            "antenna",
            "sensor",
            "keyboard",
            "server",
            "modem",
            "laptop",
            "thermostat",
            "webcam",
            "smartwatch",
            "printer",
            "fibre",
            "hotspot",
            "podcast",
            "emoji",
            "captcha",
            "wearable",
        ),
    },
    "science": {
        "actor": (
            "researchers at the university",
            "the weather service",
            "the marine institute",
            "a team of geologists",
            "the space agency",
            "the seed bank",
        ),
        "group": ("scientists", "conservation groups", "farmers", "fishing crews", "graduate students"),
        "nouns": (
            "glacier",
            "coral",
            "comet",
            "pollen",
            "meteorite",
            "aquifer",
            "fossil",
            "moth",
            "seabird",
            "wetland",
            "telescope",
            "genome",
            "plankton",
            "volcano",
            "algae",
            "permafrost",
            "salmon",
            "bacteria",
            "asteroid",
            "seagrass",
            "beetle",
            "otter",
            "peatland",
            "lichen",
            "ozone",
            "bumblebee",
            "kelp",
            "eel",
            "hedgehog",
            "truffle",
        ),
    },
    "sports": {
        "actor": (
            "the club",
            "the cricket board",
            "the rowing federation",
            "the disciplinary panel",
            "the home side",
            "the league",
        ),
        "group": ("supporters", "players", "coaches", "season-ticket holders", "club officials"),
        "nouns": (
            "stadium",
            "goalkeeper",
            "marathon",
            "regatta",
            "turf",
            "academy",
            "scoreboard",
            "floodlight",
            "velodrome",
            "referee",
            "hamstring",
            "racecourse",
            "gymnasium",
            "paddock",
            "clubhouse",
            "pavilion",
            "ticketing",
            "mascot",
            "sponsorship",
            "scrum",
            "fairway",
            "dugout",
            "trophy",
            "penalty",
            "archery",
            "croquet",
            "snooker",
            "netball",
            "bobsleigh",
            "canoe",
        ),
    },
    "autos": {
        "actor": (
            "Toyota",
            "Volkswagen",
            "Hyundai",
            "a group of parts suppliers",
            "the road safety agency",
            "the dealers' association",
            "Honda",
        ),
        "group": ("dealers", "drivers", "fleet buyers", "assembly workers", "suppliers"),
        "nouns": (
            "hybrid",
            "pickup",
            "airbag",
            "windscreen",
            "gearbox",
            "tyre",
            "dashboard",
            "charger",
            "sedan",
            "minivan",
            "brake",
            "exhaust",
            "chassis",
            "dealership",
            "forecourt",
            "odometer",
            "headlamp",
            "bumper",
            "steering",
            "transmission",
            "van",
            "moped",
            "scooter",
            "taxi",
            "caravan",
            "towbar",
            "sunroof",
            "wiper",
            "radiator",
            "camper",
        ),
    },
}
THING = ("the {n} project", "the {n} contract", "the {n} plan", "{n} prices", "the {n} review",
         "the new {n} rules", "{n} spending", "the {n} programme", "the {n} tender", "the {n} scheme")  # fmt: skip
PROBLEM = ("a shortage of {n} staff", "rising {n} costs", "delays to the {n} work", "complaints about the {n}",
           "a dispute over {n}", "falling {n} sales", "a backlog of {n} repairs")  # fmt: skip
REMEDY = ("a review of {n} spending", "more money for the {n}", "a consultation on the {n}", "a cap on {n} charges",
          "an inquiry into the {n}", "a new {n} fund", "cheaper {n} permits")  # fmt: skip
SECTION_TITLES = {"business": "Business", "politics": "Politics", "world": "World", "tech": "Technology",
                  "science": "Science", "sports": "Sport", "autos": "Autos"}  # fmt: skip

# Sentence shapes; {slot}s are filled from the event (its names and subjects), the section's
# bank or FILL. An event has two quotes that its reports share, as reports of one event quote
# the same people; they are built so that every run of four words holds a name or a figure
# of the event (the tracker groups reports that share a quoted 4-word run).
SENTENCES = (
    "{Actor} said on {day} that {thing} would {change} by {pct} percent over the next {period}.",
    "The decision follows months of {debate} over {thing} in {place}, where {group} have complained about {problem}.",
    "\u201c{quote},\u201d said {person}, {role} at {actor}.",
    "Figures published in {month} showed {thing} {moved} to {amount}, the {rank} {direction} since {year}.",
    "Critics argue that the plan does little to address {problem}, and {group} have called for {remedy}.",
    "{person}, who has spent {years} years {career}, told reporters that {thing} was {assessment}.",
    "In {place}, {group} gave the announcement a {reception} reception, with some worried about {problem}.",
    "Officials expect {thing} to be settled by {month}, although {problem} could push that back.",
    "Analysts said the {change_noun} had been {expected}, noting that {problem} had weighed on {thing} for months.",
    "{Actor} declined to comment on {thing}, but a spokesperson said talks with {group} were {assessment}.",
    "Several {group} interviewed on {day} said they had heard little about {thing} until {recently}.",
    "The figures were {assessment}, according to {person}, who follows {thing} for a {outfit} in {place}.",
    "A {outfit} report last {month} put the cost of {problem} at {amount} a year.",
    "{Group} in {place} plan a meeting next {day} to discuss {remedy} and what {thing} means for them.",
    "It is the {ordinal} time this year that {actor} has revisited {thing}, after {problem} forced a rethink.",
    "\u201c{quote},\u201d {person} said on {day}.",
    "{Actor} has promised {remedy} before, {group} point out, and they remain {skeptical} that this time will differ.",
    "Data from {place} suggest the effect of {problem} is {size}, though the picture varies from district to district.",
)
# Shapes of a generic event's lead paragraph: dense in the event's own names, places and figures,
# as a news lede is.
LEDES = (
    "{Org} said on {day} that it would {act} {thing} in {place}, citing {problem} and a {pct} percent rise in "
    "costs since {month}.",
    "{Person}, {role} at {org}, said {place} would receive {amount} for {remedy}, with work due to start in "
    "{month} {year}.",
    "The announcement in {place} came {count} days after {person} of {org} warned that {problem} would leave "
    "{thing} {amount} short.",
    "{Org} and officials in {place} have been at odds over {thing} since {month}, when {person} proposed {remedy}.",
)
FILL: dict[str, tuple[str, ...]] = {
    "act": ("suspend", "expand", "review", "scale back", "fast-track", "renegotiate", "pause", "relaunch"),
    "change": ("rise", "fall", "grow", "shrink", "recover", "slip"),
    "change_noun": ("slowdown", "rebound", "decline", "jump", "shift", "dip"),
    "period": ("two years", "18 months", "three quarters", "five years", "winter", "decade"),
    "debate": ("argument", "wrangling", "public debate", "negotiation", "uncertainty", "lobbying"),
    "moved": ("climbed", "dropped", "edged up", "fell back", "surged", "slipped"),
    "rank": ("largest", "smallest", "sharpest", "first", "steepest", "third"),
    "direction": ("increase", "decrease", "monthly gain", "quarterly drop", "move"),
    "career": (
        "in local government",
        "covering the sector",
        "running small firms",
        "as a union organiser",
        "in the civil service",
        "as a consultant",
    ),
    "assessment": (
        "encouraging",
        "disappointing",
        "better than feared",
        "still at an early stage",
        "broadly on track",
        "more complicated than expected",
        "constructive",
    ),
    "reception": ("cautious", "warm", "mixed", "frosty", "muted", "guarded"),
    "expected": ("widely expected", "a surprise to many", "long in the making", "hard to predict"),
    "recently": ("last week", "this morning", "the weekend", "a letter arrived", "the meeting was announced"),
    "outfit": ("consultancy", "research group", "trade body", "university institute", "think tank"),
    "ordinal": ("second", "third", "fourth"),
    "skeptical": ("sceptical", "unconvinced", "doubtful", "wary"),
    "size": ("modest", "significant", "larger than forecast", "hard to measure", "uneven"),
    "role": (
        "a senior adviser",
        "the head of policy",
        "a spokeswoman",
        "the chief economist",
        "a director",
        "the deputy chair",
    ),
}

# Topic paragraphs (one list of shapes per rule of ``rules/``), filled from TOPIC_FILL.
TOPICS: dict[str, dict[str, Any]] = {
    "ford-china-jv": {
        "section": "autos",
        "titles": (
            "Ford in talks with {partner} over a U.S. joint venture",
            "Ford weighs {partner} partnership to build cheaper EVs in America",
            "Ford and {partner} discuss licensing deal for electric vehicles",
        ),
        "paragraphs": (
            "Ford Motor is in talks with {partner} about a joint venture that would build {product} at a plant in "
            "{state}, people familiar with the discussions said on {day}. The talks are at an early stage and "
            "could still collapse, they said.",
            "Under the proposal, {partner} would supply {tech} while the automaker would hold a majority stake in "
            "the venture, according to {source}. Ford would license the technology and pay royalties on every "
            "vehicle built.",
            "Jim Farley, Ford's chief executive, has said the carmaker is open to a partnership with a Chinese "
            "partner if it helps cut the cost of electric vehicles, and he told {audience} in {month} that the "
            "company had to learn from {partner}.",
            "A deal with {partner} would give Ford access to cheaper {tech}, analysts said, but the joint venture "
            "would need approval in Washington, where lawmakers have questioned Chinese investment in U.S. plants.",
        ),
    },
    "gm-opposition": {
        "section": "autos",
        "titles": (
            "GM's Mary Barra warns against letting Chinese automakers into the U.S.",
            "General Motors opposes Chinese carmakers building plants in America",
            "Barra says Chinese automakers must not get a back door into the U.S. market",
        ),
        "paragraphs": (
            "General Motors chief executive Mary Barra warned on {day} that allowing Chinese automakers to build "
            "cars in the United States would be a mistake, telling {audience} that subsidized rivals would "
            "threaten American factories and jobs.",
            "GM opposes any joint venture that would give Chinese carmakers a foothold in the U.S. market, Barra "
            "said, calling such deals a back door that would tilt the playing field against Detroit.",
            "Barra urged Congress to keep the existing tariffs on Chinese vehicles, and GM has lobbied against "
            "proposals to let {maker} assemble cars at U.S. plants, {source} said.",
        ),
    },
    "trump-xi-meeting": {
        "section": "politics",
        "titles": (
            "Trump and Xi to meet in {venue} as trade talks resume",
            "White House confirms Trump-Xi summit in {venue} next {month}",
            "Trump says he will meet Xi Jinping in {venue} to discuss tariffs",
        ),
        "paragraphs": (
            "President Donald Trump will meet Chinese President Xi Jinping in {venue} next {month}, the White "
            "House said on {day}, the first face-to-face summit between the two leaders since their talks in "
            "Busan.",
            "The two leaders are expected to discuss tariffs, {issue} and {issue2} at the meeting, officials in "
            "Washington and Beijing said, and aides have been preparing the agenda for weeks.",
            "Trump told reporters at the White House that he expected a productive meeting with Xi, adding that "
            "he had spoken with the Chinese leader by phone on {day} about the summit.",
        ),
    },
    "chinese-automakers-us-entry": {
        "section": "autos",
        "titles": (
            "{maker} eyes North American plant as Chinese carmakers look to the U.S.",
            "Chinese automakers plan to enter the U.S. market through Mexico",
            "{maker} studies a factory in {mxstate} to sell Chinese EVs in America",
        ),
        "paragraphs": (
            "{maker} is studying plans to build a factory in {mxstate}, Mexico, that could one day sell Chinese "
            "cars in the United States, according to {source}. The Chinese automaker has been expanding abroad "
            "as competition at home intensifies.",
            "Chinese automakers including {maker} and {maker2} want to enter the North American market, where "
            "tariffs have so far kept Chinese EVs out of U.S. showrooms, and are weighing plants in Mexico and "
            "Canada to get around the duties.",
            "Executives at {maker} said the company would consider building vehicles in the U.S. if Washington "
            "allowed it, a sign of how far Chinese carmakers are prepared to go to win a foothold in America.",
        ),
    },
    "industry-opposition": {
        "section": "politics",
        "titles": (
            "Unions and lawmakers urge ban on Chinese vehicles",
            "UAW warns Congress against letting Chinese EVs into the U.S.",
            "Manufacturing groups oppose Chinese carmakers' access to the U.S. market",
        ),
        "paragraphs": (
            "The United Auto Workers and the Alliance for American Manufacturing urged Congress on {day} to ban "
            "Chinese vehicles from U.S. roads, warning that Chinese-made cars are a threat to American jobs and "
            "national security.",
            "A bipartisan group of lawmakers introduced a bill that would block Chinese automakers from building "
            "plants in the United States, and the unions said in a letter that the legislation must not be "
            "weakened.",
            "Shawn Fain, the UAW president, said union members would fight any deal that let Chinese EVs into "
            "the country, and Republican and Democratic senators pressed the administration to keep the ban.",
        ),
    },
}
TOPIC_FILL: dict[str, tuple[str, ...]] = {
    "partner": ("BYD", "CATL", "Geely", "Chery", "Leapmotor"),
    "maker": ("BYD", "Geely", "Chery", "Great Wall Motor", "XPeng", "NIO"),
    "maker2": ("SAIC", "Changan", "Leapmotor", "GAC"),
    "product": (
        "a low-cost electric pickup",
        "small electric SUVs",
        "lithium iron phosphate batteries",
        "a compact electric crossover",
    ),
    "tech": ("battery cells", "lithium iron phosphate battery technology", "electric drivetrains", "vehicle software"),
    "state": ("Michigan", "Kentucky", "Tennessee", "Ohio"),
    "mxstate": ("Nuevo Leon", "Coahuila", "Jalisco", "Guanajuato"),
    "source": (
        "two people briefed on the plans",
        "a company filing",
        "an industry executive",
        "people close to the negotiations",
    ),
    "audience": ("investors", "an industry conference", "analysts on a call", "a business forum"),
    "venue": ("Beijing", "Mar-a-Lago", "the White House", "Busan"),
    "issue": ("soybean purchases", "export controls on chips", "fentanyl", "rare earth supplies"),
    "issue2": ("Taiwan", "shipping fees", "investment rules", "TikTok"),
}
#: an autos paragraph that names GM and China but is about GM's own China business (a near miss)
NEAR_MISS = (
    "General Motors said its China sales fell {pct} percent in the quarter amid a price war, and the "
    "automaker's joint venture with SAIC took a write-down on older plants in {month}."
)
# fmt: on


def _cap(s: str) -> str:
    return s[:1].upper() + s[1:]


def coin(rng: random.Random, syllables: int) -> str:
    return "".join(rng.choice(SYLLABLES) for _ in range(syllables)).capitalize()


def make_cast(rng: random.Random, section: str) -> dict[str, tuple[str, ...]]:
    """What one event's reports talk about: coined people, places and an organisation, and
    subjects, problems and remedies built from a few of the section's nouns."""
    nouns = rng.sample(BANKS[section]["nouns"], 3)

    def phrases(shapes: tuple[str, ...], n: int) -> tuple[str, ...]:
        return tuple(rng.choice(shapes).format(n=rng.choice(nouns)) for _ in range(n))

    def amount() -> str:
        return f"${rng.randint(2, 900)}.{rng.randint(0, 9)} million"

    places = tuple(coin(rng, rng.randint(2, 3)) + rng.choice(PLACE_ENDS) for _ in range(2))
    org = f"{coin(rng, rng.randint(2, 3))} {rng.choice(ORG_ENDS[section])}"
    return {
        "person": tuple(f"{rng.choice(FIRST)} {coin(rng, rng.randint(2, 3))}" for _ in range(3)),
        "place": places,
        "org": (org,),
        "thing": phrases(THING, 3),
        "problem": phrases(PROBLEM, 2),
        "remedy": phrases(REMEDY, 2),
        "quote": (
            f"{org} owes {places[0]} {amount()}, not promises",
            f"{places[1]} needs {amount()} and {org} offered {amount()}",
        ),
    }


def _fill(
    rng: random.Random,
    shape: str,
    bank: dict[str, tuple[str, ...]],
    extra: dict[str, str],
    cast: dict[str, tuple[str, ...]],
) -> str:
    def value(name: str) -> str:
        if name in extra:
            return extra[name]
        low = name.lower()
        if low == "actor" and rng.random() < 0.5:
            text = cast["org"][0]
        elif low in cast:
            text = rng.choice(cast[low])
        elif low in bank:
            text = rng.choice(bank[low])
        elif low in FILL:
            text = rng.choice(FILL[low])
        elif low in TOPIC_FILL:
            text = rng.choice(TOPIC_FILL[low])
        elif low == "day":
            text = rng.choice(DAYS)
        elif low == "month":
            text = rng.choice(MONTHS)
        elif low == "pct":
            text = f"{rng.randint(2, 40)}.{rng.randint(0, 9)}"
        elif low == "amount":
            text = f"${rng.randint(2, 900)}.{rng.randint(0, 9)} million"
        elif low == "year":
            text = str(rng.randint(1998, 2024))
        elif low == "count":
            text = str(rng.randint(2, 60))
        elif low == "years":
            text = str(rng.randint(3, 30))
        else:
            raise KeyError(name)
        return _cap(text) if name[0].isupper() else text

    out, rest = [], shape
    while "{" in rest:
        before, _, after = rest.partition("{")
        name, _, rest = after.partition("}")
        out.append(before)
        out.append(value(name))
    out.append(rest)
    return "".join(out)


@dataclass
class Article:
    k: int
    j: int
    section: str
    title: str
    summary: str
    author: str
    paragraphs: list[str]
    published: datetime
    path: str
    topic: str | None = None
    event: str = ""  #: articles of one event are reports of the same story
    tags: list[str] = field(default_factory=list)


def slugify(title: str) -> str:
    words = "".join(c.lower() if c.isalnum() else " " for c in title).split()
    return "-".join(words[:9])


#: generic articles that re-report an event of a small shared pool (a story in several feeds)
SHARED_EVENTS = 0.12
SHARED_POOL = 40
TOPIC_EVENTS = 3  #: distinct events per topic


def make_article(seed: int, k: int, j: int, per_feed: int, epoch: float) -> Article:
    """Article j of feed k. An event (its own, or one shared with other feeds' reports)
    fixes the section, the coined names, the title and the lead paragraph; the article's
    own random choices write the rest, so no two pages have the same text."""
    rng = random.Random(f"{seed}:{k}:{j}")
    roll = rng.random()
    topic = rng.choice(sorted(TOPICS)) if roll < 0.2 else None
    if topic:
        event = f"{topic}:{rng.randrange(TOPIC_EVENTS)}"
    elif roll < 0.2 + SHARED_EVENTS:
        event = f"shared:{rng.randrange(SHARED_POOL)}"
    else:
        event = f"own:{k}:{j}"
    ev = random.Random(f"{seed}:{event}")
    section = TOPICS[topic]["section"] if topic else ev.choice(sorted(BANKS))
    bank = BANKS["business" if topic and section == "autos" and ev.random() < 0.5 else section]
    cast = make_cast(ev, section)
    extra = {name: ev.choice(values) for name, values in TOPIC_FILL.items()}
    extra["day"] = ev.choice(DAYS)
    extra["month"] = ev.choice(MONTHS)
    if topic:
        spec = TOPICS[topic]
        title = _fill(ev, ev.choice(spec["titles"]), bank, extra, cast)
        topical = [_fill(ev, p, bank, extra, cast) for p in spec["paragraphs"]]
        lead, others = topical[0], topical[1:]
        rng.shuffle(others)
        others = others[: rng.randint(1, len(others))]
    else:
        thing, place = cast["thing"][0], cast["place"][0]
        actor = _cap(ev.choice((cast["org"][0], *bank["actor"])))
        title = ev.choice(
            (
                f"{actor} faces questions over {thing}",
                f"{_cap(thing)} in {place} under pressure as {cast['problem'][0]} bites",
                f"{actor} promises {cast['remedy'][0]} in {place}",
                f"What {thing} means for {ev.choice(bank['group'])} in {place}",
                f"{_cap(ev.choice(bank['group']))} in {place} push back on {thing}",
                f"{cast['org'][0]} warns of {cast['problem'][1]} in {place}",
            )
        )
        lead = " ".join(_fill(ev, shape, bank, {}, cast) for shape in ev.sample(LEDES, 3))
        others = []
        if section == "autos" and rng.random() < 0.3:
            others.append(_fill(rng, NEAR_MISS, bank, {}, cast))
    sentences = [_fill(rng, rng.choice(SENTENCES), bank, {}, cast) for _ in range(rng.randint(21, 33))]
    paragraphs = []
    while sentences:
        n = rng.randint(2, 4)
        paragraphs.append(" ".join(sentences[:n]))
        del sentences[:n]
    for p in others:  # spread through the generic text
        paragraphs.insert(rng.randint(0, len(paragraphs)), p)
    paragraphs.insert(0, lead)
    summary = lead.split(". ")[0].rstrip(".") + "."
    # a feed's newest entries: the last day, newest first (as a real cycle of 10 new per feed)
    published = datetime.fromtimestamp(epoch, UTC) - timedelta(minutes=(j + rng.random()) * 1440 / per_feed)
    path = f"/news/{section}/{k}/{j}-{slugify(title)}.html"
    author = f"{rng.choice(FIRST)} {rng.choice(LAST)}"
    tags = rng.sample(("Economy", "Local", "Trade", "Policy", "Transport", "Energy", "Jobs", "Markets"), 3)
    return Article(k, j, section, title, summary, author, paragraphs, published, path, topic, event, tags)


# -- pages and feeds ----------------------------------------------------------------------------


def _e(s: str) -> str:
    return html.escape(s, quote=True)


NAV = "".join(
    f'<li class="nav-item"><a href="/section/{s}">{t}</a></li>'
    for s, t in [*SECTION_TITLES.items(), ("opinion", "Opinion"), ("culture", "Culture"), ("travel", "Travel"),
                 ("food", "Food"), ("property", "Property"), ("jobs", "Jobs"), ("weather", "Weather"),
                 ("puzzles", "Puzzles"), ("podcasts", "Podcasts"), ("video", "Video")]
)  # fmt: skip
FOOTER = "".join(
    f'<li><a href="/{slug}">{label}</a></li>'
    for slug, label in (("about", "About us"), ("contact", "Contact"), ("advertise", "Advertise"),
                        ("careers", "Careers"), ("privacy", "Privacy policy"), ("cookies", "Cookie settings"),
                        ("terms", "Terms of use"), ("corrections", "Corrections"), ("ethics", "Editorial standards"),
                        ("help", "Help centre"), ("archive", "Archive"), ("rss", "RSS feeds"))
)  # fmt: skip


def page_html(a: Article, related: list[Article], base: str) -> bytes:
    when = a.published.isoformat().replace("+00:00", "Z")
    paras = list(a.paragraphs)
    body = []
    for i, p in enumerate(paras):
        body.append(f"<p>{_e(p)}</p>")
        if i == len(paras) // 2 and related:
            r = related[0]
            body.append(
                f'<aside class="inline-promo"><span>Read more</span> <a href="{r.path}">{_e(r.title)}</a></aside>'
            )
    more = "".join(
        f'<li class="card"><a href="{r.path}"><img src="/img/{r.k}-{r.j}-thumb.jpg" alt="">'
        f'<span class="card-title">{_e(r.title)}</span></a><time>{r.published:%d %b %Y}</time></li>'
        for r in related
    )
    tags = "".join(f'<a class="tag" href="/topic/{t.lower()}">{t}</a>' for t in a.tags)
    ld = json.dumps(
        {"@context": "https://schema.org", "@type": "NewsArticle", "headline": a.title, "datePublished": when,
         "author": {"@type": "Person", "name": a.author}, "publisher": {"@type": "Organization", "name": SITE}},
    )  # fmt: skip
    comments = "".join(
        f'<div class="comment"><b>{name}</b> <span>{h} hours ago</span><p>{_e(text)}</p></div>'
        for name, h, text in (
            (
                "harbourwatcher",
                (a.j % 5) + 1,
                "I have been saying this for years, nobody listens until it is too late.",
            ),
            ("k_mills", (a.k % 7) + 2, "Would be good to see the full figures rather than a summary."),
            ("eastside_resident", (a.k + a.j) % 9 + 1, "Thanks for covering this, the other papers have ignored it."),
        )
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_e(a.title)} | {SITE}</title>
<link rel="canonical" href="{base}{a.path}">
<link rel="stylesheet" href="/static/site.css">
<meta name="description" content="{_e(a.summary)}">
<meta property="og:type" content="article">
<meta property="og:title" content="{_e(a.title)}">
<meta property="og:url" content="{base}{a.path}">
<meta property="og:site_name" content="{SITE}">
<meta property="article:published_time" content="{when}">
<meta property="article:section" content="{SECTION_TITLES[a.section]}">
<meta name="author" content="{_e(a.author)}">
<script type="application/ld+json">{ld}</script>
<script>window.dataLayer=window.dataLayer||[];dataLayer.push({{"section":"{a.section}","id":"{a.k}-{a.j}"}});</script>
</head><body class="article-page">
<div id="cookie-consent" class="cookie-banner"><p>We and our partners use cookies to personalise content and
ads, to provide social media features and to analyse our traffic.</p><button>Accept all</button>
<button>Reject non-essential</button><a href="/cookies">Manage preferences</a></div>
<header class="masthead"><div class="top-bar"><a href="/subscribe">Subscribe</a> <a href="/login">Sign in</a>
<span class="date">{a.published:%A %d %B %Y}</span></div>
<a class="logo" href="/">{SITE}</a>
<nav class="main-nav"><ul>{NAV}</ul></nav>
<form class="search" action="/search"><input name="q" placeholder="Search the Courier"><button>Go</button></form>
</header>
<div class="ad-slot leaderboard">Advertisement</div>
<main id="content">
<nav class="breadcrumb"><a href="/">Home</a> &rsaquo;
<a href="/section/{a.section}">{SECTION_TITLES[a.section]}</a></nav>
<article class="story">
<header><p class="kicker">{SECTION_TITLES[a.section]}</p>
<h1 class="headline">{_e(a.title)}</h1>
<p class="standfirst">{_e(a.summary)}</p>
<p class="byline">By <a rel="author" href="/authors/{slugify(a.author)}">{_e(a.author)}</a>
&middot; <time datetime="{when}">{a.published:%d %B %Y, %H:%M}</time></p></header>
<figure class="lead-image"><img src="/img/{a.k}-{a.j}.jpg" alt="" width="1200" height="675">
<figcaption>File photo. Photograph: Courier staff</figcaption></figure>
<div class="article-body">
{chr(10).join(body)}
</div>
<div class="tags">{tags}</div>
<div class="share">Share this article: <a href="#">Email</a> <a href="#">Facebook</a> <a href="#">X</a>
<a href="#">LinkedIn</a> <a href="#">WhatsApp</a> <a href="#">Copy link</a></div>
</article>
<aside class="related"><h2>More from {SITE}</h2><ul>{more}</ul></aside>
<aside class="newsletter"><h2>The Morning Courier</h2>
<p>The day's most important stories from the harbour and beyond, in your inbox at 7am.</p>
<form><input type="email" placeholder="you@example.com"><button>Sign up</button></form>
<p class="small">By signing up you agree to our <a href="/privacy">privacy policy</a>.</p></aside>
<section class="comments"><h2>Comments (3)</h2>{comments}
<p>Comments are moderated. Please read our <a href="/community">community guidelines</a>.</p></section>
<div class="ad-slot mpu">Advertisement</div>
</main>
<footer class="site-footer"><ul>{FOOTER}</ul>
<p>&copy; 2026 {SITE} Ltd. All rights reserved. Registered in Eastport. Generated text for a benchmark.</p></footer>
<script src="/static/analytics.js" async></script>
<script src="/static/comments.js" defer></script>
</body></html>
""".encode()


def feed_xml(k: int, items: list[Article], base: str, last_build: str) -> bytes:
    entries = "".join(
        f"<item><title>{_e(a.title)}</title><link>{base}{a.path}</link>"
        f'<guid isPermaLink="true">{base}{a.path}</guid>'
        f"<pubDate>{email.utils.format_datetime(a.published, usegmt=True)}</pubDate>"
        f"<dc:creator>{_e(a.author)}</dc:creator><category>{SECTION_TITLES[a.section]}</category>"
        f"<description>{_e(a.summary)}</description></item>"
        for a in items
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<rss version="2.0" xmlns:dc="http://purl.org/dc/elements/1.1/">'
        f"<channel><title>{SITE}: desk {k}</title><link>{base}/desk/{k}</link>"
        f"<description>Latest stories from desk {k}</description><language>en-gb</language>"
        f"<lastBuildDate>{last_build}</lastBuildDate><ttl>15</ttl>{entries}</channel></rss>"
    ).encode()


class Corpus:
    """Every feed and page of the site, deterministic in (seed, base, epoch, sizes)."""

    def __init__(self, seed: int, base: str, epoch: float, feeds: int, per_feed: int) -> None:
        self.base = base
        self.feeds = feeds
        self.articles = [[make_article(seed, k, j, per_feed, epoch) for j in range(per_feed)] for k in range(feeds)]
        self.last_modified = email.utils.formatdate(epoch, usegmt=True)

    def feed_path(self, k: int) -> str:
        return f"/feeds/desk-{k}.xml"

    def feed_urls(self) -> list[str]:
        return [self.base + self.feed_path(k) for k in range(self.feeds)]

    def items(self) -> Iterator[tuple[str, str, bytes]]:
        """(path, content type, body) of every feed and page."""
        flat = [a for feed in self.articles for a in feed]
        for k, arts in enumerate(self.articles):
            yield (
                self.feed_path(k),
                "application/rss+xml; charset=utf-8",
                feed_xml(k, arts, self.base, self.last_modified),
            )
        for i, a in enumerate(flat):
            related = [flat[(i + d) % len(flat)] for d in (3, 17, 41, 97, 211, 389)]
            yield a.path, "text/html; charset=utf-8", page_html(a, related, self.base)


# -- the site (its own process) --------------------------------------------------------------------


def serve(args: argparse.Namespace) -> None:
    stats: Counter[str] = Counter()
    lock = threading.Lock()
    routes: dict[str, tuple[str, bytes, str]] = {}
    latency = args.latency
    last_modified = ""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True

        def log_message(self, format: str, *a: Any) -> None:
            pass

        def _send(self, status: int, reason: str, headers: dict[str, str], body: bytes) -> None:
            head = f"HTTP/1.1 {status} {reason}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
            self.wfile.write(head.encode("latin-1") + b"\r\n" + body)  # one write: no Nagle stalls

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/_stats":
                with lock:
                    body = json.dumps(stats).encode()
                self._send(200, "OK", {"Content-Type": "application/json", "Content-Length": str(len(body))}, body)
                return
            time.sleep(latency)
            route = routes.get(path)
            kind = "feed" if path.startswith("/feeds/") else "page" if path.startswith("/news/") else "other"
            if route is None:
                body = b"<html><body><h1>Not found</h1></body></html>"
                with lock:
                    stats[f"{kind} 404"] += 1
                self._send(404, "Not Found", {"Content-Type": "text/html", "Content-Length": str(len(body))}, body)
                return
            ctype, body, etag = route
            validators = {"ETag": etag, "Last-Modified": last_modified}
            if self.headers.get("If-None-Match") == etag or (
                self.headers.get("If-None-Match") is None and self.headers.get("If-Modified-Since") == last_modified
            ):
                with lock:
                    stats[f"{kind} 304"] += 1
                self._send(304, "Not Modified", {**validators, "Content-Length": "0"}, b"")
                return
            with lock:
                stats[f"{kind} 200"] += 1
            headers = {"Content-Type": ctype, "Content-Length": str(len(body)), "Cache-Control": "max-age=60"}
            self._send(200, "OK", {**headers, **validators}, body)

    class Server(ThreadingHTTPServer):
        daemon_threads = True
        request_queue_size = 1024

    server = Server(("127.0.0.1", 0), Handler)
    base = f"http://127.0.0.1:{server.server_address[1]}"
    corpus = Corpus(args.seed, base, args.epoch, args.feeds, args.per_feed)
    last_modified = corpus.last_modified
    for path, ctype, body in corpus.items():
        routes[path] = (ctype, body, '"' + hashlib.blake2b(body, digest_size=10).hexdigest() + '"')
    Path(args.ready_file).write_text(base)
    server.serve_forever()


def start_site(args: argparse.Namespace, tmp: Path, epoch: float) -> tuple[subprocess.Popen[bytes], str]:
    ready = tmp / "site-ready"
    cmd = [sys.executable, __file__, "--serve", "--ready-file", str(ready), "--feeds", str(args.feeds),
           "--per-feed", str(args.per_feed), "--latency", str(args.latency), "--seed", str(args.seed),
           "--epoch", repr(epoch)]  # fmt: skip
    proc = subprocess.Popen(cmd)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if ready.exists() and ready.read_text():
            return proc, ready.read_text().strip()
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    proc.kill()
    raise SystemExit("the site did not start")


def site_stats(base: str) -> Counter[str]:
    with urllib.request.urlopen(base + "/_stats", timeout=10) as r:
        return Counter(json.loads(r.read()))


def describe(before: Counter[str], after: Counter[str]) -> str:
    diff = after - before
    return ", ".join(f"{v} {k}" for k, v in sorted(diff.items())) or "no requests"


# -- the cases ---------------------------------------------------------------------------------------


def write_config(path: Path, db: Path, feed_urls: list[str], args: argparse.Namespace) -> None:
    feeds = "".join(f'[[feeds]]\nname = "desk {k}"\nurl = "{url}"\n' for k, url in enumerate(feed_urls))
    path.write_text(
        f'[database]\nurl = "sqlite:///{db}"\n'
        f'[rules]\npaths = ["{REPO / "rules"}"]\n'
        "[fetch]\n"
        f"concurrency = {args.concurrency}\n"
        f"per_host_concurrency = {args.concurrency}  # every feed is on one host: the per-host budget is lifted\n"
        "per_host_per_minute = 0\n"
        f"extract_workers = {args.workers}\n"
        '[logging]\nlevel = "WARNING"\n' + feeds
    )


def maxrss_mb(who: int) -> float:
    return resource.getrusage(who).ru_maxrss / 1024


def child_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


@dataclass
class Cold:
    wall: float
    cpu_self: float
    cpu_children: float
    new_items: int
    stored: int
    extracted: int
    fallbacks: int
    failures: int
    rss_self: float
    rss_child: float
    topics: dict[str, int]
    roles: dict[str, int]
    stories: int
    grouped_stories: int
    requests: str


def cold_cycle(config_path: Path, base: str, *, profile: Any = None) -> Cold:
    from sqlalchemy import text

    from tracker.core.config import load_config
    from tracker.service.app import open_store, poll_once

    cfg = load_config(config_path)
    store = open_store(cfg)
    before = site_stats(base)
    cpu0, kids0 = time.process_time(), child_cpu()
    t0 = time.perf_counter()
    if profile is not None:
        profile.enable()
    try:
        report = poll_once(cfg, store)
    finally:
        if profile is not None:
            profile.disable()
    wall = time.perf_counter() - t0
    cpu, kids = time.process_time() - cpu0, child_cpu() - kids0
    rss_self, rss_child = maxrss_mb(resource.RUSAGE_SELF), maxrss_mb(resource.RUSAGE_CHILDREN)
    with store.engine.connect() as conn:
        stored = conn.execute(text("SELECT count(*) FROM items")).scalar_one()
        stories = conn.execute(text("SELECT count(DISTINCT story_id) FROM items")).scalar() or 0
        grouped = (
            conn.execute(
                text("SELECT count(*) FROM (SELECT story_id FROM items GROUP BY story_id HAVING count(*) > 1)")
            ).scalar()
            or 0
        )
    store.engine.dispose()
    return Cold(
        wall=wall,
        cpu_self=cpu,
        cpu_children=kids,
        new_items=report.new_items,
        stored=stored,
        extracted=sum(f.extracted for f in report.feeds),
        fallbacks=sum(f.fallbacks for f in report.feeds),
        failures=sum(1 for f in report.feeds if f.status.failed) + sum(f.article_failures for f in report.feeds),
        rss_self=rss_self,
        rss_child=rss_child,
        topics={rule: len(titles) for rule, titles in sorted(report.topics.items())},
        roles=dict(sorted(report.roles.items())),
        stories=stories,
        grouped_stories=grouped,
        requests=describe(before, site_stats(base)),
    )


def warm_cycle(config_path: Path, base: str) -> tuple[float, str, str]:
    before = site_stats(base)
    t0 = time.perf_counter()
    profiled = (
        ["-m", "cProfile", "-o", os.environ["BENCH_WARM_PROFILE"]] if os.environ.get("BENCH_WARM_PROFILE") else []
    )
    run = subprocess.run(
        [sys.executable, *profiled, "-m", "tracker", "--config", str(config_path), "poll", "--once"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=1800,
    )
    wall = time.perf_counter() - t0
    if run.returncode != 0:
        print(run.stdout, run.stderr, file=sys.stderr)
        raise SystemExit(f"tracker poll --once exited {run.returncode}")
    summary = [line for line in run.stdout.splitlines() if " feeds, " in line and " new articles" in line]
    return wall, describe(before, site_stats(base)), (summary[0].strip() if summary else "(no summary line)")


def startup_only() -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "tracker", "poll", "--help"], check=True, capture_output=True, cwd=REPO)
    return time.perf_counter() - t0


def cpu_floor(corpus: Corpus) -> tuple[float, int, int]:
    """CPU seconds of feedparser on every feed and trafilatura.extract on every page, bodies in memory."""
    import feedparser
    import trafilatura

    feeds: list[bytes] = []
    pages: list[bytes] = []
    for path, _, body in corpus.items():
        (feeds if path.startswith("/feeds/") else pages).append(body)
    trafilatura.extract(pages[0])  # first-call set-up is not part of the floor
    feedparser.parse(feeds[0])
    t0 = time.process_time()
    entries = sum(len(feedparser.parse(body).entries) for body in feeds)
    texts = sum(1 for body in pages if trafilatura.extract(body) is not None)
    return time.process_time() - t0, entries, texts


def naive(feed_urls: list[str]) -> tuple[float, int]:
    """The serial script: fetch a feed, parse it, fetch and extract each entry, one at a time."""
    import feedparser
    import httpx
    import trafilatura

    done = 0
    t0 = time.perf_counter()
    with httpx.Client(timeout=30) as client:
        for url in feed_urls:
            feed = feedparser.parse(client.get(url).content)
            for entry in feed.entries:
                page = client.get(entry.link)
                if trafilatura.extract(page.text):
                    done += 1
    return time.perf_counter() - t0, done


def profile_summary(prof: Any) -> str:
    import pstats

    import tracker

    root = str(Path(tracker.__file__).resolve().parent)
    stats = pstats.Stats(prof).stats  # type: ignore[attr-defined]
    rows = [(key, val) for key, val in stats.items()]

    def name(key: tuple[str, int, str]) -> str:
        file, line, func = key
        if file == "~":
            return func
        if file.startswith(root):
            return f"tracker/{Path(file).relative_to(root)}:{line} {func}"
        parts = Path(file).parts
        short = "/".join(parts[-2:]) if "site-packages" in parts else file
        return f"{short}:{line} {func}"

    out = ["", "Main thread, `tracker` code, top 15 by cumulative time:", "",
           "| cumulative s | own s | calls | function |", "|---:|---:|---:|---|"]  # fmt: skip
    ours = sorted((r for r in rows if r[0][0].startswith(root)), key=lambda r: -r[1][3])[:15]
    for key, (_cc, nc, tt, ct, _callers) in ours:
        out.append(f"| {ct:.2f} | {tt:.2f} | {nc} | `{name(key)}` |")
    out += ["", "Main thread, any code, top 10 by own time (tottime):", "",
            "| own s | cumulative s | calls | function |", "|---:|---:|---:|---|"]  # fmt: skip
    for key, (_cc, nc, tt, ct, _callers) in sorted(rows, key=lambda r: -r[1][2])[:10]:
        out.append(f"| {tt:.2f} | {ct:.2f} | {nc} | `{name(key)}` |")
    return "\n".join(out)


# -- main --------------------------------------------------------------------------------------------


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f}, {five:.2f}, {fifteen:.2f} ({os.cpu_count()} cores)"


def main() -> None:
    from tracker.core.config import FetchConfig

    defaults = FetchConfig()
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--feeds", type=int, default=200)
    ap.add_argument("--per-feed", type=int, default=10, help="articles per feed, all new in the cold cycle")
    ap.add_argument("--latency", type=float, default=0.05, help="seconds the site waits before every response")
    workers_help = f"[fetch] extract_workers (default: the tracker's, {defaults.extract_workers} = one per core)"
    ap.add_argument("--workers", type=int, default=defaults.extract_workers, help=workers_help)
    concurrency_help = f"[fetch] concurrency and per_host_concurrency (default: the tracker's, {defaults.concurrency})"
    ap.add_argument("--concurrency", type=int, default=defaults.concurrency, help=concurrency_help)
    ap.add_argument("--seed", type=int, default=16)
    ap.add_argument("--skip-naive", action="store_true", help="skip the naive serial script (~2 min at full size)")
    ap.add_argument("--quick", action="store_true", help="20 feeds x 10 articles, a smoke run")
    ap.add_argument("--profile", action="store_true", help="also run a cold cycle under cProfile (main thread)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory (printed)")
    ap.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--ready-file", help=argparse.SUPPRESS)
    ap.add_argument("--epoch", type=float, default=0.0, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        serve(args)
        return
    if args.quick:
        args.feeds, args.per_feed = 20, 10
    n_articles = args.feeds * args.per_feed
    load_before = load()
    tmp = Path(tempfile.mkdtemp(prefix="bench-cycle-"))
    epoch = float(int(time.time()))
    site, base = start_site(args, tmp, epoch)
    try:
        corpus_feeds = [base + f"/feeds/desk-{k}.xml" for k in range(args.feeds)]
        config = tmp / "tracker.toml"
        write_config(config, tmp / "tracker.sqlite", corpus_feeds, args)

        print(f"cold cycle ({n_articles} articles) ...", file=sys.stderr, flush=True)
        cold = cold_cycle(config, base)
        print(f"  {cold.wall:.1f}s, {cold.new_items} new, {cold.requests}", file=sys.stderr, flush=True)
        profile_text = ""
        if args.profile:
            import cProfile

            print("cold cycle under cProfile ...", file=sys.stderr, flush=True)
            pconfig = tmp / "profile.toml"
            write_config(pconfig, tmp / "profile.sqlite", corpus_feeds, args)
            prof = cProfile.Profile()
            profiled = cold_cycle(pconfig, base, profile=prof)
            profile_text = (
                f"\nProfiled cold cycle: {profiled.wall:.1f} s wall under cProfile ({profiled.new_items} new items)."
                + profile_summary(prof)
            )
        print("warm cycle ...", file=sys.stderr, flush=True)
        warm, warm_requests, warm_line = warm_cycle(config, base)
        startup = startup_only()

        print("CPU floor ...", file=sys.stderr, flush=True)
        corpus = Corpus(args.seed, base, epoch, args.feeds, args.per_feed)
        floor_cpu, floor_entries, floor_texts = cpu_floor(corpus)
        naive_wall = naive_done = None
        if not args.skip_naive:
            print(
                f"naive serial script (~{n_articles * args.latency * 1.1 + floor_cpu:.0f}s) ...",
                file=sys.stderr,
                flush=True,
            )
            naive_wall, naive_done = naive(corpus_feeds)
    finally:
        site.terminate()
        site.wait()
        if not args.keep:
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)
    load_after = load()

    floor2 = floor_cpu / 2
    requests = args.feeds + n_articles
    latency_floor = requests * args.latency / args.concurrency
    print()
    print(
        f"## One cycle: {args.feeds} feeds x {args.per_feed} articles ({n_articles}), "
        f"{args.latency * 1000:.0f} ms per response, one host"
    )
    print()
    print(
        f"tracker config: concurrency = per_host_concurrency = {args.concurrency}, per_host_per_minute = 0, "
        f"extract_workers = {args.workers}{' (one per core)' if args.workers == 0 else ''}. "
        f"Latency floor at that concurrency: {requests} requests x {args.latency * 1000:.0f} ms / "
        f"{args.concurrency} = {latency_floor:.1f} s."
    )
    print(f"Load before: {load_before}; after: {load_after}.")
    print()
    print("| case | wall s | CPU s | articles | peak RSS MB | notes |")
    print("|---|---:|---:|---:|---:|---|")
    if naive_wall is not None:
        print(f"| naive serial script (httpx, feedparser, trafilatura) | {naive_wall:.1f} | | {naive_done} | | |")
    else:
        print("| naive serial script | (skipped) | | | | `--skip-naive` |")
    print(f"| CPU floor, one process | | {floor_cpu:.2f} | {floor_texts} | | feedparser {args.feeds} feeds "
          f"({floor_entries} entries) + trafilatura.extract {n_articles} pages |")  # fmt: skip
    print(f"| CPU floor / 2 cores | {floor2:.2f} | | | | |")
    print(
        f"| tracker cold cycle (library, fresh SQLite) | {cold.wall:.2f} "
        f"| {cold.cpu_self:.1f} + {cold.cpu_children:.1f} | {cold.new_items} "
        f"| {cold.rss_self:.0f} + {cold.rss_child:.0f} | stored {cold.stored}; extracted {cold.extracted}, "
        f"feed text {cold.fallbacks}, failures {cold.failures} |"
    )
    print(f"| tracker warm cycle (`tracker poll --once`, subprocess) | {warm:.2f} | | 0 | | {warm_requests} |")
    print(f"| start-up only (`tracker poll --help`, subprocess) | {startup:.2f} | | | | |")
    print()
    print("CPU s of the cold cycle: main process + its reaped children (extraction workers). Peak RSS: main "
          "process (whole bench process so far) + largest child.")  # fmt: skip
    print()
    print("| ratio | value | target | met |")
    print("|---|---:|---:|---|")
    ratio = cold.wall / floor2
    print(f"| cold / floor (2 cores) | {ratio:.1f}x | <= 2x | {'yes' if ratio <= 2 else 'no'} |")
    if naive_wall is not None:
        speedup = naive_wall / cold.wall
        print(f"| naive / cold | {speedup:.1f}x | >= 40x | {'yes' if speedup >= 40 else 'no'} |")
    else:
        print("| naive / cold | (naive skipped) | >= 40x | |")
    print(f"| warm cycle wall | {warm:.2f} s | < 1.5 s | {'yes' if warm < 1.5 else 'no'} |")
    rss_ok = "yes" if cold.rss_self < 400 else "no"
    print(f"| cold peak RSS, main process | {cold.rss_self:.0f} MB | < 400 MB | {rss_ok} |")
    print()
    ok = cold.new_items == n_articles
    print(f"Cold cycle stored {cold.new_items} new items (expected {n_articles}: {'ok' if ok else 'MISMATCH'}); "
          f"site requests: {cold.requests}.")  # fmt: skip
    print(f"Topics: {', '.join(f'{k} {v}' for k, v in cold.topics.items()) or 'none'}; "
          f"{cold.stories} stories, {cold.grouped_stories} with more than one item "
          f"(roles: {', '.join(f'{k} {v}' for k, v in cold.roles.items())}).")  # fmt: skip
    print(f"Warm cycle output: {warm_line}")
    if profile_text:
        print(profile_text)
    if args.keep:
        print(f"\nFiles kept in {tmp}")
    if not ok:
        sys.exit(1)


if __name__ == "__main__":
    main()
