"""A labelled corpus of customer-service text with personal data, to measure the PII recognizers.

Every text is built from a template whose slots are filled with generated values; the generator knows the
span and kind of each value it put in, so recall and precision can be counted exactly. Each kind comes in
the formats people write (phones national and international, with and without separators; cards spaced,
dashed and plain; IBANs grouped and compact; IPv4 and IPv6; US, UK and lower-case addresses; names after
cues, alone, and as sign-offs). Half the person names are *not* in the recognizer's word lists, so the figure
for names measures the cues as well as the lists. Negatives sit beside them: order numbers, SKUs, tracking
numbers, dates, prices, product names (several of them also given names: "Juniper"), version strings,
Luhn-invalid card-like numbers and IBANs with a wrong checksum; none may be flagged.

:func:`pii_log_records` makes log records whose answers copy the user's e-mail, phone and name into a tool
call, for the test that pseudonymized records still teach a model to copy them.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from typing import Any

from dataflywheel.privacy.checksums import IBAN_LENGTHS, iban_remainder, luhn_check_digit
from dataflywheel.records.chat import WireRecord, WireTool
from dataflywheel.synth.catalog import PRODUCTS

KINDS = ("email", "phone", "card_number", "iban", "ip_address", "person", "address")


@dataclass(frozen=True, slots=True)
class Span:
    start: int
    end: int
    label: str
    """A PII kind (:data:`KINDS`) for entities; what it is (``order_number``, ``product``) for negatives."""


@dataclass(frozen=True, slots=True)
class LabelledText:
    text: str
    entities: tuple[Span, ...]
    negatives: tuple[Span, ...]


# Given names and surnames: the first half of each list is in the recognizer's lexicon, the second is not.
KNOWN_FIRST = (
    "Sarah",
    "Michael",
    "Priya",
    "Lukas",
    "Fatima",
    "Carlos",
    "Emily",
    "Kenji",
    "Olga",
    "Thabo",
    "Isabella",
    "Mohammed",
    "Chloe",
    "Rahul",
    "Ingrid",
    "Matteo",
    "Nicole",
    "Tunde",
    "Megan",
    "Andrei",
)
UNSEEN_FIRST = (
    "Xochitl",
    "Aoife",
    "Siobhan",
    "Tadhg",
    "Eilidh",
    "Oisin",
    "Solveig",
    "Ragnhild",
    "Eero",
    "Kalani",
    "Anahera",
    "Wiremu",
    "Obinna",
    "Folasade",
    "Akosua",
    "Tendai",
    "Farai",
    "Bogdana",
    "Radomir",
    "Philippa",
)
KNOWN_LAST = (
    "Johnson",
    "Garcia",
    "Nguyen",
    "Patel",
    "Schmidt",
    "Rossi",
    "Kowalski",
    "Okafor",
    "Tanaka",
    "Dubois",
    "Murphy",
    "Hernandez",
    "Chen",
    "Andersson",
    "Singh",
    "Mensah",
    "Kim",
    "Fischer",
    "Lopez",
    "Walsh",
)
UNSEEN_LAST = (
    "Quispe",
    "Okwuosa",
    "Thistlewood",
    "Penhaligon",
    "Villanueva",
    "Etxeberria",
    "Saarinen",
    "Oyelaran",
    "Nakashima",
    "Ravensworth",
    "Featherstone",
    "Abernethy",
    "Zubiri",
    "Vanterpool",
    "Kurosawa",
    "Wetherell",
    "Achterberg",
    "Lindgren",
    "Mbeki",
    "Castellanos",
)

_MAIL_DOMAINS = (
    "gmail.com",
    "outlook.com",
    "yahoo.co.uk",
    "icloud.com",
    "proton.me",
    "hotmail.fr",
    "web.de",
    "acme-logistics.io",
    "mail.northwindtraders.com",
    "uni-heidelberg.de",
    "fastmail.fm",
)
_STREETS = (
    "Elm",
    "Maple",
    "Oak",
    "Cedar",
    "Pine",
    "Washington",
    "Lincoln",
    "Lake",
    "Hillcrest",
    "Sunset",
    "Riverside",
    "Park",
    "Meadowbrook",
    "Evergreen",
    "Baker",
    "Church",
    "Highland",
    "Willow Creek",
)
_SUFFIXES = (
    "Street",
    "St",
    "Avenue",
    "Ave",
    "Road",
    "Rd",
    "Boulevard",
    "Blvd",
    "Lane",
    "Drive",
    "Dr",
    "Court",
    "Way",
    "Place",
    "Terrace",
    "Parkway",
)
_CITIES = (
    ("Denver", "CO"),
    ("Portland", "OR"),
    ("Austin", "TX"),
    ("Madison", "WI"),
    ("Springfield", "IL"),
    ("Burlington", "VT"),
    ("Asheville", "NC"),
    ("Boise", "ID"),
    ("Salt Lake City", "UT"),
)
_UK = (("London", "NW1 6XE"), ("Manchester", "M1 1AE"), ("Leeds", "LS1 4AP"), ("Bristol", "BS1 5TR"))
_IBAN_BANKS = {"GB": "NWBK", "NL": "ABNA", "IE": "AIBK"}
_IBAN_COUNTRIES = ("DE", "GB", "FR", "ES", "NL", "IT", "CH", "BE", "AT", "IE", "PL", "SE")


class _Values:
    """Generators of one kind of value each, in varied formats."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def first(self) -> str:
        return self.rng.choice(KNOWN_FIRST if self.rng.random() < 0.5 else UNSEEN_FIRST)

    def last(self) -> str:
        return self.rng.choice(KNOWN_LAST if self.rng.random() < 0.5 else UNSEEN_LAST)

    def person(self) -> str:
        return f"{self.first()} {self.last()}" if self.rng.random() < 0.7 else self.first()

    def email(self) -> str:
        r = self.rng
        first, last = self.first().lower(), self.last().lower()
        local = r.choice(
            [
                f"{first}.{last}",
                f"{first[0]}{last}",
                f"{first}_{last}{r.randint(1, 99)}",
                f"{first}+shop",
                f"{first}{r.randint(1970, 2005)}",
                f"{last}.{first[0]}",
                f"{first}-{last}",
            ]
        )
        address = f"{local}@{r.choice(_MAIL_DOMAINS)}"
        return address.upper() if r.random() < 0.05 else (address.capitalize() if r.random() < 0.1 else address)

    def phone(self) -> str:
        r = self.rng
        area, exchange, line = (
            r.randint(201, 989),
            r.choice([x for x in range(200, 1000) if x != 555]),
            r.randint(0, 9999),
        )
        nanp = [
            f"({area}) {exchange}-{line:04d}",
            f"{area}-{exchange}-{line:04d}",
            f"{area}.{exchange}.{line:04d}",
            f"+1 {area} {exchange} {line:04d}",
            f"+1-{area}-{exchange}-{line:04d}",
            f"1-{area}-{exchange}-{line:04d}",
            f"{area}{exchange}{line:04d}",
        ]
        intl = [
            f"+44 7{r.randint(100, 999)} {r.randint(100000, 999999)}",
            f"07{r.randint(100, 999)} {r.randint(100000, 999999)}",
            f"020 {r.randint(7000, 8999)} {r.randint(1000, 9999)}",
            f"+49 30 {r.randint(10000000, 99999999)}",
            f"+49 151 {r.randint(10000000, 99999999)}",
            f"+33 1 {r.randint(10, 99)} {r.randint(10, 99)} {r.randint(10, 99)} {r.randint(10, 99)}",
            f"+91 {r.randint(70000, 99999)} {r.randint(10000, 99999)}",
            f"+61 4{r.randint(10, 99)} {r.randint(100, 999)} {r.randint(100, 999)}",
            f"0{r.randint(400, 499)} {r.randint(100, 999)} {r.randint(100, 999)}",
        ]
        return r.choice(nanp if r.random() < 0.6 else intl)

    def card(self) -> str:
        r = self.rng
        kind = r.choice(["visa", "mc", "amex", "discover"])
        prefix, length = {
            "visa": ("4", 16),
            "mc": (str(r.randint(51, 55)), 16),
            "amex": (r.choice(["34", "37"]), 15),
            "discover": ("6011", 16),
        }[kind]
        payload = prefix + "".join(str(r.randint(0, 9)) for _ in range(length - len(prefix) - 1))
        digits = payload + str(luhn_check_digit(payload))
        sep = r.choice([" ", "-", ""])
        groups = (4, 6, 5) if length == 15 else (4, 4, 4, 4)
        parts, pos = [], 0
        for g in groups:
            parts.append(digits[pos : pos + g])
            pos += g
        return sep.join(parts)

    def iban(self, valid: bool = True) -> str:
        r = self.rng
        country = r.choice(_IBAN_COUNTRIES)
        n = IBAN_LENGTHS[country]
        bank = _IBAN_BANKS.get(country, "")
        bban = bank + "".join(str(r.randint(0, 9)) for _ in range(n - 4 - len(bank)))
        check = 98 - iban_remainder(country + "00" + bban)
        if not valid:
            check = (check + r.randint(1, 50)) % 97 + 2
        compact = f"{country}{check:02d}{bban}"
        if r.random() < 0.6:
            return " ".join(compact[i : i + 4] for i in range(0, len(compact), 4))
        return compact

    def ip(self) -> str:
        r = self.rng
        roll = r.random()
        if roll < 0.55:
            first = r.choice([23, 31, 45, 62, 77, 81, 91, 104, 145, 172, 185, 212, 217])
            return f"{first}.{r.randint(0, 255)}.{r.randint(0, 255)}.{r.randint(1, 254)}"
        if roll < 0.7:
            return r.choice(
                [
                    f"192.168.{r.randint(0, 20)}.{r.randint(2, 254)}",
                    f"10.{r.randint(0, 255)}.{r.randint(0, 255)}.{r.randint(1, 254)}",
                ]
            )
        groups = [f"{r.randint(0, 0xFFFF):x}" for _ in range(8)]
        groups[0] = r.choice(["2a02", "2600", "2001", "2a01", "2c0f"])
        if groups[0] == "2001":
            groups[1] = "4860"
        if r.random() < 0.5:
            return ":".join(groups[:3]) + "::" + groups[7]
        return ":".join(groups)

    def address(self) -> str:
        r = self.rng
        number = str(r.randint(1, 9999)) + (r.choice(["A", "B"]) if r.random() < 0.05 else "")
        street = f"{r.choice(['', '', '', 'N. ', 'S. ', 'East ', 'W '])}{r.choice(_STREETS)} {r.choice(_SUFFIXES)}"
        roll = r.random()
        if roll < 0.12:
            city, post = r.choice(_UK)
            suffix = r.choice(["Street", "Road", "Lane", "Close", "Crescent"])
            return f"{number} {r.choice(_STREETS)} {suffix}, {city} {post}"
        if roll < 0.2:
            return f"{number} {r.choice(_STREETS).lower()} {r.choice(['street', 'st', 'ave', 'road', 'drive'])}"
        if roll < 0.25:
            return f"P.O. Box {r.randint(10, 99999)}" if r.random() < 0.5 else f"PO Box {r.randint(10, 9999)}"
        unit = r.choice(
            [
                "",
                "",
                "",
                f", Apt {r.randint(1, 40)}{r.choice('ABCD')}",
                f" Suite {r.randint(100, 900)}",
                f", Unit {r.randint(1, 30)}",
            ]
        )
        tail = ""
        if r.random() < 0.6:
            city, state = r.choice(_CITIES)
            tail = f", {city}, {state} {r.randint(10000, 99999)}" if r.random() < 0.8 else f", {city}, {state}"
        return f"{number} {street}{unit}{tail}"

    # negatives
    def order_number(self) -> str:
        r = self.rng
        return r.choice(
            [
                f"NW{r.randint(100000, 999999)}",
                f"#{r.randint(10000, 99999)}",
                f"{r.randint(1000000000, 1999999999)}",
                f"ORD-{r.randint(2019, 2025)}-{r.randint(10000, 99999)}",
            ]
        )

    def sku(self) -> str:
        r = self.rng
        return r.choice(
            [
                f"{r.randint(1000, 9999)}-{r.randint(100, 999)}",
                f"SKU-{r.randint(10000, 99999)}-{r.choice('ABC')}",
                f"NW-{r.randint(100, 999)}-{r.randint(10, 99)}",
            ]
        )

    def tracking(self) -> str:
        r = self.rng
        return r.choice(
            [
                f"1Z{r.randint(100, 999)}AA1{r.randint(10**10, 10**11 - 1)}",
                " ".join(f"{r.randint(0, 9999):04d}" for _ in range(5)) + f" {r.randint(10, 99)}",
                f"{r.randint(10**11, 10**12 - 1)}",
            ]
        )

    def date(self) -> str:
        r = self.rng
        y, m, d = r.randint(2022, 2026), r.randint(1, 12), r.randint(1, 28)
        return r.choice([f"{y}-{m:02d}-{d:02d}", f"{m}/{d}/{y}", f"{d:02d}.{m:02d}.{y}", f"{m:02d}/{d:02d}"])

    def price(self) -> str:
        r = self.rng
        return r.choice(
            [f"${r.randint(10, 2000):,}.{r.randint(0, 99):02d}", f"{r.randint(10, 500)} EUR", f"${r.randint(5, 90)}"]
        )

    def product(self) -> str:
        name, kind, _ = self.rng.choice(PRODUCTS)
        return f"{name} {kind}"

    def version(self) -> str:
        r = self.rng
        return r.choice(
            [
                f"v{r.randint(1, 9)}.{r.randint(0, 20)}.{r.randint(0, 9)}",
                f"firmware {r.randint(1, 9)}.{r.randint(0, 9)}.{r.randint(0, 9)}.{r.randint(0, 99)}",
            ]
        )

    def bad_card(self) -> str:
        r = self.rng
        payload = "6" + "".join(str(r.randint(0, 9)) for _ in range(14))
        digits = payload + str((luhn_check_digit(payload) + r.randint(1, 9)) % 10)
        return " ".join(digits[i : i + 4] for i in range(0, 16, 4))

    def bad_iban(self) -> str:
        return self.iban(valid=False)

    def user_id(self) -> str:
        return str(self.rng.randint(100, 99999))


NEGATIVE_SLOTS = (
    "order_number",
    "sku",
    "tracking",
    "date",
    "price",
    "product",
    "version",
    "bad_card",
    "bad_iban",
    "user_id",
)

# Templates by the kind they are about. {first}/{last} are parts of a person name; other slots are kinds or
# negatives. Placeholders only; the text around them is what customers and agents write.
TEMPLATES: dict[str, tuple[str, ...]] = {
    "email": (
        "Hi, can you send the receipt for order {order_number} to {email}? Thanks!",
        "My email is {email} - I never got the confirmation for the {product}.",
        "Please update the account email from {email} to {email}.",
        "you can reach me at {email} anytime",
        "I ordered the {product} on {date} with {email} but nothing arrived.",
        "Is {email} the address you have on file? I changed it last month.",
        "Sent a photo of the damage to {email} earlier ({price} item).",
    ),
    "phone": (
        "Please call me at {phone} about my return of the {product}.",
        "My phone number is {phone}, the delivery driver couldn't reach me.",
        "Can someone text me on {phone}? Order {order_number}.",
        "Best number to reach me: {phone} (after 5pm).",
        "I tried calling {phone} but it just rings. Tracking {tracking}.",
        "mobile {phone}, landline {phone}",
        "Update my contact number to {phone} please, I moved on {date}.",
    ),
    "card_number": (
        "I was charged twice on my card {card_number} for order {order_number}.",
        "Can you refund it to the card ending in the number {card_number}?",
        "card number {card_number}, exp 04/27, the payment of {price} failed",
        "The charge on {card_number} shows {price} but the {product} was on sale.",
        "I paid with {card_number}; my gift card {bad_card} was declined.",
    ),
    "iban": (
        "Please wire the refund to my IBAN {iban}.",
        "IBAN: {iban} (account holder is me). Order {order_number}.",
        "Refund to {iban} please, not to the card.",
        "my bank details: {iban}. the old one {bad_iban} is closed",
        "Could you send the {price} to IBAN {iban}?",
    ),
    "ip_address": (
        "The checkout page keeps failing from {ip_address}, order {order_number}.",
        "Our office network is {ip_address} and the site blocks us since {date}.",
        "Login attempt from {ip_address} - was that you? Device firmware {version}.",
        "I get error 403 when I connect from {ip_address} or {ip_address}.",
        "Whitelist {ip_address} for the B2B portal please, account {user_id}.",
    ),
    "person": (
        "Hi, my name is {person} and I need to return the {product}.",
        "This is {person}, I placed order {order_number} on {date}.",
        "The package was addressed to {person} but left at the wrong door.",
        "Thanks for your help!\n{person}",
        "Hello {first}, your {product} has shipped and will arrive soon.",
        "I'm {person}, calling about the {price} charge on {date}.",
        "Ms. {last} asked me to follow up on order {order_number}.",
        "Can I speak to {person} about my refund?",
        "My wife {first} ordered the {product}; can you change the size?",
        "Regards, {person}",
        "Dear {person}, we are sorry the {product} arrived damaged.",
        "Please put {person} as the recipient, the {product} is a gift.",
    ),
    "address": (
        "Please ship it to {address} instead.",
        "My new address is {address}, the {product} went to the old one.",
        "I live at {address}; can I pick up order {order_number} in store?",
        "Deliver to {address} please, between 9 and 5.",
        "The return label shows {address} but I moved on {date}.",
        "billing address: {address}",
    ),
}
NEGATIVE_TEMPLATES = (
    "Where is order {order_number}? It was supposed to arrive on {date}.",
    "Do you have the {product} in stock? SKU {sku}.",
    "Tracking number {tracking} hasn't updated since {date}.",
    "The {product} costs {price} online but {price} in the shop.",
    "My watch is on {version} and won't sync with the {product}.",
    "Gift card {bad_card} shows a balance of {price}.",
    "Is the {product} ({sku}) waterproof? We're hiking in Jordan and Georgia in June.",
    "Hi Team, the {product} from order {order_number} is great. Thanks, Northwind!",
    "The current user id is : {user_id}. Order {order_number}, placed {date}.",
    "Can I swap the {product} for the {product}? Size 10, order {order_number}.",
    "Old bank reference {bad_iban} is not mine, please ignore it.",
)

# Written after the recognizers were tuned on TEMPLATES and never tuned on: the held-out figure.
HELD_OUT_TEMPLATES: dict[str, tuple[str, ...]] = {
    "email": (
        "ok so i emailed {email} twice already",
        "contact: {email}",
        "Forwarding this from my work address ({email}) since my personal one bounced.",
        "Your reply went to {email}, which is my old job.",
    ),
    "phone": (
        "whatsapp me {phone}",
        "Reach the front desk on {phone} ext. 12",
        "{phone} is my cell, call before noon",
        "The courier called from {phone} but I missed it.",
    ),
    "card_number": (
        "Visa {card_number} was charged {price}",
        "they billed {card_number} instead of my PayPal",
        "I see two pending charges on {card_number}.",
    ),
    "iban": (
        "Bank transfer details -> {iban}",
        "the IBAN on my invoice ({iban}) is wrong",
    ),
    "ip_address": (
        "server logs show {ip_address} hammering the login",
        "my router says {ip_address}",
    ),
    "person": (
        "My son {first} needs the boots in size 10.",
        "{person} here - still waiting on the refund.",
        "Could you let {person} know the order is ready?",
        "The account is under {person}.",
        "Signed, {person}",
        "Ask for {first} at the Denver shop, she helped me last time.",
        "Hey {first}! Thanks for the quick reply.",
        "ok thanks {first}",
        "Order placed by {person} on {date}.",
    ),
    "address": (
        "new shipping addr {address}",
        "It's the yellow house at {address}.",
        "Send the replacement to {address}, not the store.",
    ),
}
HELD_OUT_NEGATIVE_TEMPLATES = (
    "Order {order_number} and order {order_number} were both late.",
    "The Trailblazer 2 tent weighs 4.5 lbs, ref {sku}",
    "Summit Heavy socks in grey, size M, {price}",
    "Arrived {date} at 10:45, tracking {tracking}",
    "Mount Rainier trip with the Cascade Pro jacket, {product} too",
    "I rated the {product} 5 stars on {date}.",
)

_SLOT = re.compile(r"\{(\w+)\}")


def _fill(template: str, values: _Values) -> LabelledText:
    text: list[str] = []
    pos = 0
    entities: list[Span] = []
    negatives: list[Span] = []
    last_end = 0
    for m in _SLOT.finditer(template):
        text.append(template[last_end : m.start()])
        pos += m.start() - last_end
        slot = m.group(1)
        if slot == "first":
            value, label = values.first(), "person"
        elif slot == "last":
            value, label = values.last(), "person"
        elif slot in KINDS:
            value = {
                "email": values.email,
                "phone": values.phone,
                "card_number": values.card,
                "iban": values.iban,
                "ip_address": values.ip,
                "person": values.person,
                "address": values.address,
            }[slot]()
            label = slot
        else:
            value, label = getattr(values, slot)(), slot
        (entities if label in KINDS else negatives).append(Span(pos, pos + len(value), label))
        text.append(value)
        pos += len(value)
        last_end = m.end()
    text.append(template[last_end:])
    return LabelledText("".join(text), tuple(entities), tuple(negatives))


def generate_corpus(
    per_kind: int = 320, seed: int = 13, negatives_share: float = 0.25, held_out: bool = False
) -> list[LabelledText]:
    """Texts until every kind has at least ``per_kind`` entities; about ``negatives_share`` of the texts have
    only negatives. ``held_out``: from the templates the recognizers were not tuned on."""
    templates, negative_templates = (
        (HELD_OUT_TEMPLATES, HELD_OUT_NEGATIVE_TEMPLATES) if held_out else (TEMPLATES, NEGATIVE_TEMPLATES)
    )
    rng = random.Random(seed)
    values = _Values(rng)
    counts = dict.fromkeys(KINDS, 0)
    out: list[LabelledText] = []
    while min(counts.values()) < per_kind:
        if rng.random() < negatives_share:
            out.append(_fill(rng.choice(negative_templates), values))
            continue
        kind = min(KINDS, key=lambda k: (counts[k], rng.random()))
        item = _fill(rng.choice(templates[kind]), values)
        for span in item.entities:
            counts[span.label] += 1
        out.append(item)
    return out


# ---- log records that copy PII into tool calls ---------------------------------------------------
LOOKUP_TOOL: WireTool = {
    "type": "function",
    "function": {
        "name": "LookupCustomer",
        "description": "Find the customer's account.",
        "parameters": {
            "type": "object",
            "properties": {
                "email": {"type": "string"},
                "phone": {"type": "string"},
                "customer_name": {"type": "string"},
                "query": {"type": "string"},
            },
            "required": ["email", "query"],
        },
    },
}


def pii_log_records(
    n: int, seed: int = 3, workload_id: str = "account_desk", client_id: str = "northwind-pii"
) -> list[WireRecord]:
    """Log records whose user turn gives an e-mail, a phone number and a name, and whose answer copies them
    into a ``LookupCustomer`` call (arguments as OpenAI sends them: a JSON string)."""
    rng = random.Random(seed)
    values = _Values(rng)
    out: list[WireRecord] = []
    for i in range(n):
        first, last = values.first(), values.last()
        name = f"{first} {last}"
        email, phone = values.email(), values.phone()
        product = values.product()
        user = f"Hi, my name is {name}. My email is {email} and my phone is {phone}. Where is my {product}?"
        args = {"email": email, "phone": phone, "customer_name": name, "query": f"status of {product} order"}
        out.append(
            {
                "timestamp": 1_750_000_000 + i * 60,
                "workload_id": workload_id,
                "client_id": client_id,
                "request": {
                    "model": "teacher",
                    "messages": [
                        {"role": "system", "content": "You help customers of Northwind Outfitters."},
                        {"role": "user", "content": user},
                    ],
                    "tools": [LOOKUP_TOOL],
                },
                "response": {
                    "choices": [
                        {
                            "index": 0,
                            "finish_reason": "tool_calls",
                            "message": {
                                "role": "assistant",
                                "content": "",
                                "tool_calls": [
                                    {
                                        "id": f"call_{i}",
                                        "type": "function",
                                        "function": {"name": "LookupCustomer", "arguments": _dumps(args)},
                                    }
                                ],
                            },
                        }
                    ]
                },
            }
        )
    return out


def _dumps(obj: Any) -> str:
    import json

    return json.dumps(obj)
