"""Vocabulary of the synthetic traffic: the store, its tools, its products, and the sentence templates.

Everything here is invented for data-flywheel ("Northwind Outfitters", an outdoor gear store) and is plain
data: tuples and dicts in a fixed order, so that :mod:`dataflywheel.synth.generator` draws from them
deterministically. All text is ASCII.

Templates are ``str.format`` strings over the slots the generator fills (``{item}``, ``{name}``, ``{kind}``,
``{when}``, ...). A user-side template and its teacher-side paraphrase (``queries``) use the same slots.
"""

from __future__ import annotations

from dataclasses import dataclass

from dataflywheel.records.chat import WireTool

STORE = "Northwind Outfitters"

SMALL_TALK = "HandleSmallTalk"
PRODUCT = "ToProductAdvisor"
ORDERS = "ToOrderTracking"
RETURNS = "ToReturnsDesk"
TOOL_NAMES: tuple[str, ...] = (SMALL_TALK, PRODUCT, ORDERS, RETURNS)
"""The four routing tools, in the order they appear in every request."""

DEFAULT_CLASS_WEIGHTS: dict[str, float] = {
    RETURNS: 0.28,
    PRODUCT: 0.27,
    SMALL_TALK: 0.24,
    ORDERS: 0.21,
}
"""Default share of each tool among the teacher's answers (roughly the blueprint sample's mix)."""

SYSTEM_PROMPT = (
    "You are the customer support assistant of Northwind Outfitters, a store for camping, hiking, "
    "climbing and paddling gear that sells online and in its shops. \n"
    "Your job is to understand what the customer needs and to route the request to the right place. \n"
    "Questions about our products, about the customer's orders, or about returns and refunds are answered "
    "by dedicated specialists: hand the request over by calling the matching tool. You cannot look up, "
    "change or cancel orders, and you cannot open returns yourself; only the specialists can do that.\n"
    "When you call a tool, restate the customer's request as a short, self-contained query that keeps "
    "every detail that matters (product names, colors, sizes, order numbers, dates, reasons). \n"
    "The customer does not know that specialists exist, so never mention them or the handover; "
    "just call the tool quietly.\n"
    "Be thorough: if a first lookup finds nothing, widen it before telling the customer that the "
    "information is not available. \n"
    "For greetings, small talk, or anything unrelated to Northwind Outfitters products, orders and "
    "returns, call the `HandleSmallTalk` tool so the conversation is handled politely.\n"
    "Call exactly one tool for each customer message.\n"
    "The current user id is : {user_id}\n"
)
"""System prompt of the routing assistant; ``{user_id}`` is the logged-in customer."""

TOOLS: list[WireTool] = [
    {
        "type": "function",
        "function": {
            "name": SMALL_TALK,
            "description": (
                "Answers greetings, chit-chat and requests that have nothing to do with Northwind Outfitters "
                "by replying kindly, steering the customer back, and explaining plainly what this assistant "
                "can and cannot help with."
            ),
            "parameters": {
                "properties": {
                    "message": {
                        "description": "The reply to show the customer, or the customer's message itself.",
                        "type": "string",
                    }
                },
                "required": ["message"],
                "type": "object",
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": PRODUCT,
            "description": (
                "Hands the conversation to the product advisor. \n"
                "Answers general questions about the gear we sell: specifications, materials, sizing and fit, "
                "stock, care and repair, warranty coverage, and troubleshooting.\n"
                "Also answers from product manuals, the catalog, buying guides and FAQs, and covers store "
                "policies: shipping destinations and times, payment methods, gift cards, price matching, "
                "the return policy in general, and how to contact our shops."
            ),
            "parameters": {
                "properties": {
                    "query": {
                        "description": (
                            "The customer's product or policy question, rewritten to stand on its own: the "
                            "product, the detail asked about, and any trip or use the customer mentioned."
                        ),
                        "type": "string",
                    }
                },
                "required": ["query"],
                "type": "object",
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": ORDERS,
            "description": (
                "Hands questions about the customer's own orders to the order tracking desk.\n"
                "It sees order numbers, order dates, items and quantities, amounts charged, shipping "
                "status, carriers and tracking numbers, \nand the customer's full purchase history."
            ),
            "parameters": {
                "properties": {
                    "query": {
                        "description": (
                            "The order question, such as where a package is, why it is late, what was "
                            "charged, or what was bought on a given date."
                        ),
                        "type": "string",
                    },
                    "user_id": {"description": "Id of the customer who owns the orders.", "type": "string"},
                },
                "required": ["query", "user_id"],
                "type": "object",
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": RETURNS,
            "description": (
                "Hands return and refund requests to the returns desk.\n"
                "It opens returns and exchanges, issues return labels, and follows up on returns already "
                "sent: \ntheir status, dates, reasons, refunds and notes."
            ),
            "parameters": {
                "properties": {
                    "query": {
                        "description": (
                            "The return request, such as which item to send back and why, an exchange, "
                            "or the status of a return or refund."
                        ),
                        "type": "string",
                    },
                    "user_id": {
                        "description": "Id of the customer who asks for the return.",
                        "type": "string",
                    },
                },
                "required": ["query", "user_id"],
                "type": "object",
            },
        },
    },
]
"""The tools list of every request, in OpenAI form."""


# ------------------------------------------------------------------------------------------------ products


@dataclass(frozen=True, slots=True)
class Kind:
    """A kind of product: its noun, questions about it, and problems it can have."""

    noun: str
    attrs: tuple[tuple[str, str], ...]
    """(how a customer asks, as an indirect question; the noun phrase the teacher writes)."""
    issues: tuple[tuple[str, str], ...]
    """(how a customer describes the problem, as a clause; the teacher's short name for it)."""
    sizes: tuple[str, ...] = ()


_APPAREL = ("XS", "S", "M", "L", "XL", "XXL")
_SHOES = ("7", "7.5", "8", "8.5", "9", "9.5", "10", "10.5", "11", "12", "13")

KINDS: dict[str, Kind] = {
    "tent": Kind(
        "tent",
        (
            ("how much it weighs when packed", "packed weight"),
            ("how many people actually fit inside", "sleeping capacity"),
            ("whether it holds up in strong wind", "wind resistance"),
            ("what the floor fabric is", "floor fabric"),
            ("if it is freestanding", "freestanding design"),
            ("how tall it is inside", "interior peak height"),
        ),
        (
            ("one of the poles snapped on the first night", "broken pole"),
            ("the rainfly leaks along the seams", "rainfly seam leak"),
            ("the door zipper keeps splitting open", "door zipper splitting"),
        ),
    ),
    "sleeping bag": Kind(
        "sleeping bag",
        (
            ("what the comfort temperature rating is", "comfort temperature rating"),
            ("whether the down is treated against moisture", "water-resistant down treatment"),
            ("how small it packs", "packed size"),
            ("if it zips together with a second bag", "zip-together compatibility"),
            ("what the fill power is", "fill power"),
        ),
        (
            ("feathers keep poking out through the shell", "down leaking through the shell"),
            ("the zipper snags every single time", "snagging zipper"),
            ("I was freezing way above the rated temperature", "not warm at its rating"),
        ),
        ("regular", "long", "wide"),
    ),
    "backpack": Kind(
        "backpack",
        (
            ("what torso lengths it fits", "torso length range"),
            ("whether it has a hydration sleeve", "hydration sleeve"),
            ("how many liters it really holds", "capacity in liters"),
            ("if the hip belt can be swapped", "interchangeable hip belt"),
            ("whether it counts as carry-on size", "carry-on dimensions"),
        ),
        (
            ("a shoulder strap buckle cracked", "cracked shoulder strap buckle"),
            ("the frame sheet digs into my back", "frame sheet digging in"),
            ("the stitching on the hip belt is coming apart", "hip belt stitching failure"),
        ),
        ("S/M", "M/L", "L/XL"),
    ),
    "daypack": Kind(
        "daypack",
        (
            ("whether it fits a 16 inch laptop", "laptop sleeve size"),
            ("if it comes with a rain cover", "included rain cover"),
            ("how many liters it holds", "capacity in liters"),
            ("whether the fabric is recycled", "recycled fabric"),
        ),
        (
            ("the main zipper pulled off its track", "zipper off track"),
            ("a strap anchor ripped out", "torn strap anchor"),
        ),
    ),
    "rain jacket": Kind(
        "rain jacket",
        (
            ("how waterproof it really is", "waterproof rating"),
            ("if it has pit zips", "pit zips"),
            ("whether the hood fits over a climbing helmet", "helmet-compatible hood"),
            ("how it fits compared to normal sizing", "fit versus standard sizing"),
            ("how to renew the water repellent coating", "renewing the DWR coating"),
        ),
        (
            ("water soaks through at the shoulders", "leaking at the shoulders"),
            ("the seam tape is peeling off inside", "peeling seam tape"),
            ("the main zipper pull broke off", "broken zipper pull"),
        ),
        _APPAREL,
    ),
    "down jacket": Kind(
        "down jacket",
        (
            ("what the fill power is", "fill power"),
            ("if it packs into its own pocket", "stuffs into its own pocket"),
            ("whether it is warm enough for winter belays", "warmth for winter belays"),
            ("how to wash it without ruining the down", "washing instructions"),
        ),
        (
            ("it is losing feathers everywhere", "shedding down"),
            ("the baffles went flat after one wash", "flat baffles after washing"),
            ("there is a tear near the cuff", "tear near the cuff"),
        ),
        _APPAREL,
    ),
    "fleece": Kind(
        "fleece",
        (
            ("whether it pills over time", "pilling resistance"),
            ("how warm it is as a midlayer", "warmth as a midlayer"),
            ("if the sleeves run long", "sleeve length"),
        ),
        (
            ("it pilled badly after one wash", "pilling after washing"),
            ("the zipper tore away from the fabric", "zipper tearing out"),
        ),
        _APPAREL,
    ),
    "hiking boots": Kind(
        "hiking boots",
        (
            ("how much break-in time they need", "break-in period"),
            ("whether they run true to size", "sizing accuracy"),
            ("if they come in a wide width", "wide width availability"),
            ("whether the lining is waterproof", "waterproof lining"),
            ("what kind of sole they have", "outsole type"),
        ),
        (
            ("the sole is separating at the toe", "sole separating at the toe"),
            ("they leak after an hour in wet grass", "leaking in wet grass"),
            ("a lace hook ripped out", "broken lace hook"),
        ),
        _SHOES,
    ),
    "trail runners": Kind(
        "trail runners",
        (
            ("how much heel to toe drop they have", "heel-to-toe drop"),
            ("if they grip on wet rock", "grip on wet rock"),
            ("how many miles they usually last", "expected mileage"),
            ("whether they fit a wide forefoot", "forefoot width"),
        ),
        (
            ("the mesh tore after two runs", "torn upper mesh"),
            ("the heel rubs my ankle raw", "heel rubbing"),
            ("the lugs are wearing down really fast", "fast lug wear"),
        ),
        _SHOES,
    ),
    "trekking poles": Kind(
        "trekking poles",
        (
            ("how short they collapse", "collapsed length"),
            ("whether the tips can be replaced", "replaceable tips"),
            ("what weight they are rated for", "load rating"),
            ("if they work as tent poles", "use as tent poles"),
        ),
        (
            ("the flick lock will not hold", "flick lock slipping"),
            ("one section is stuck and will not extend", "stuck section"),
            ("the cork grip is crumbling", "crumbling cork grip"),
        ),
    ),
    "camp stove": Kind(
        "camp stove",
        (
            ("which fuel canisters it takes", "compatible fuel canisters"),
            ("how long it takes to boil a liter", "boil time per liter"),
            ("if it works well at high altitude", "high-altitude performance"),
            ("whether it has a push-button igniter", "piezo igniter"),
        ),
        (
            ("the igniter stopped sparking", "igniter not sparking"),
            ("the flame keeps sputtering out", "sputtering flame"),
            ("it smells like gas around the valve", "gas leak at the valve"),
        ),
    ),
    "headlamp": Kind(
        "headlamp",
        (
            ("how long the battery lasts on high", "battery life on high"),
            ("whether it has a red light mode", "red light mode"),
            ("if it can run on AAA batteries as a backup", "AAA battery backup"),
            ("how many lumens it puts out", "maximum brightness"),
            ("whether it survives heavy rain", "water resistance rating"),
        ),
        (
            ("it will not charge anymore", "not charging"),
            ("it flickers on the low setting", "flickering on low"),
            ("the strap lost all its stretch", "worn-out strap"),
        ),
    ),
    "water filter": Kind(
        "water filter",
        (
            ("how many liters the cartridge lasts", "cartridge lifespan"),
            ("whether it removes viruses", "virus removal"),
            ("how fast it flows", "flow rate"),
            ("if it screws onto standard bottles", "bottle thread compatibility"),
        ),
        (
            ("the flow slowed to a trickle", "very slow flow"),
            ("it froze overnight and I do not know if it is still safe", "safety after freezing"),
            ("the hose fitting cracked", "cracked hose fitting"),
        ),
    ),
    "hammock": Kind(
        "hammock",
        (
            ("what weight it can hold", "weight capacity"),
            ("if the tree straps are included", "included tree straps"),
            ("whether a bug net fits it", "bug net compatibility"),
            ("how long it is", "length"),
        ),
        (
            ("a carabiner bent under my weight", "bent carabiner"),
            ("the fabric ripped near one end", "fabric tear near the end"),
        ),
    ),
    "sleeping pad": Kind(
        "sleeping pad",
        (
            ("what the R-value is", "R-value"),
            ("how crinkly and loud it is", "noise level"),
            ("whether it comes with a pump sack", "included pump sack"),
            ("how thick it is when inflated", "inflated thickness"),
        ),
        (
            ("it slowly goes flat overnight", "slow leak overnight"),
            ("the valve is stuck", "stuck valve"),
            ("an inside baffle popped and now there is a bubble", "popped internal baffle"),
        ),
        ("regular", "long", "wide"),
    ),
    "cooler": Kind(
        "cooler",
        (
            ("how many days it keeps ice", "ice retention"),
            ("if it is certified bear resistant", "bear-resistant certification"),
            ("whether the drain plug leaks", "drain plug seal"),
            ("what it weighs empty", "empty weight"),
        ),
        (
            ("the lid latch snapped", "broken lid latch"),
            ("the lid gasket is coming loose", "loose lid gasket"),
        ),
    ),
    "kayak paddle": Kind(
        "kayak paddle",
        (
            ("what the shaft is made of", "shaft material"),
            ("whether the blades can be feathered", "adjustable feathering"),
            ("how to pick the right length", "length sizing"),
            ("if it breaks down into four pieces", "four-piece breakdown"),
        ),
        (
            ("the ferrule is stuck together", "stuck ferrule"),
            ("a blade chipped on a rock", "chipped blade"),
        ),
    ),
    "climbing harness": Kind(
        "climbing harness",
        (
            ("how many gear loops it has", "number of gear loops"),
            ("whether the leg loops adjust", "adjustable leg loops"),
            ("how the sizes run", "size chart"),
            ("when it should be retired", "retirement guidelines"),
        ),
        (
            ("the belay loop looks frayed", "frayed belay loop"),
            ("the waist buckle will not stay tight", "slipping waist buckle"),
        ),
        ("XS", "S", "M", "L", "XL"),
    ),
    "wool socks": Kind(
        "wool socks",
        (
            ("how much wool is in them", "wool content"),
            ("whether they shrink in the dryer", "dryer shrinkage"),
            ("if the lifetime guarantee covers holes", "lifetime guarantee"),
        ),
        (
            ("I already wore a hole through the heel", "hole in the heel"),
            ("they shrank a whole size", "shrinking"),
        ),
        ("S", "M", "L", "XL"),
    ),
    "GPS watch": Kind(
        "GPS watch",
        (
            ("how long the battery lasts in GPS mode", "battery life in GPS mode"),
            ("whether it has offline topo maps", "offline topo maps"),
            ("if it pairs with an iPhone", "iPhone pairing"),
            ("whether it has a barometric altimeter", "barometric altimeter"),
        ),
        (
            ("it will not sync with the app", "app sync failure"),
            ("the screen fogged up on the inside", "fogged screen"),
            ("the band clasp broke", "broken band clasp"),
        ),
    ),
    "camp chair": Kind(
        "camp chair",
        (
            ("what weight it is rated for", "weight rating"),
            ("how small it folds down", "folded size"),
            ("if it has a cup holder", "cup holder"),
        ),
        (
            ("one of the legs bent", "bent leg"),
            ("the seat fabric tore at a seam", "torn seat seam"),
        ),
    ),
    "lantern": Kind(
        "lantern",
        (
            ("how many hours it runs", "run time"),
            ("whether it can charge a phone", "USB phone charging"),
            ("if it is dimmable", "dimming"),
        ),
        (
            ("it will not turn on even after charging", "not powering on"),
            ("the solar panel does not seem to charge it", "solar charging not working"),
        ),
    ),
    "insulated bottle": Kind(
        "insulated bottle",
        (
            ("how long it keeps drinks cold", "cold retention"),
            ("whether it is dishwasher safe", "dishwasher safety"),
            ("if the lid is leak-proof", "leak-proof lid"),
            ("whether it fits a car cup holder", "cup holder fit"),
        ),
        (
            ("the lid leaks in my bag", "leaking lid"),
            ("it stopped keeping coffee hot", "lost insulation"),
            ("the paint is chipping off", "chipping paint"),
        ),
    ),
}
"""Product kinds by key."""

PRODUCTS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    # (name, kind key, colors)
    ("Ridgeline 2P", "tent", ("olive", "sand", "slate")),
    ("Basecamp 4", "tent", ("forest green", "orange")),
    ("Cirrus UL 1", "tent", ("grey", "lime")),
    ("Talus Storm 3", "tent", ("red", "olive")),
    ("Kestrel 20", "sleeping bag", ("navy", "rust")),
    ("Juniper 0", "sleeping bag", ("charcoal", "teal")),
    ("Driftwood 35", "sleeping bag", ("moss", "plum")),
    ("Switchback 55", "backpack", ("black", "alpine blue", "rust")),
    ("Tamarack 65", "backpack", ("olive", "charcoal")),
    ("Arete 40", "backpack", ("glacier white", "black")),
    ("Scree 22", "daypack", ("black", "heather grey", "mustard")),
    ("Larkspur 18", "daypack", ("lavender", "navy")),
    ("Squall Shell", "rain jacket", ("cobalt", "black", "safety orange")),
    ("Cascade Pro", "rain jacket", ("forest", "red", "graphite")),
    ("Ember Hoody", "down jacket", ("black", "ochre", "deep teal")),
    ("Caldera Parka", "down jacket", ("navy", "burgundy")),
    ("Alder Grid", "fleece", ("oatmeal", "pine", "black")),
    ("Bristlecone Quarter Zip", "fleece", ("rust", "heather blue")),
    ("Granite Peak Mid", "hiking boots", ("brown", "grey/orange")),
    ("Sagebrush Low", "hiking boots", ("tan", "black")),
    ("Couloir GTX", "hiking boots", ("charcoal", "rust")),
    ("Quickfoot 3", "trail runners", ("volt", "black/white", "coral")),
    ("Mudlark", "trail runners", ("olive", "blue")),
    ("Cairn Carbon", "trekking poles", ("black",)),
    ("Cairn Alloy", "trekking poles", ("silver", "red")),
    ("Firefly Mini", "camp stove", ("silver",)),
    ("Hearth 2-Burner", "camp stove", ("green", "black")),
    ("Lumen 400", "headlamp", ("black", "orange")),
    ("Lumen 900R", "headlamp", ("black", "teal")),
    ("ClearStream", "water filter", ("blue",)),
    ("ClearStream Gravity 6L", "water filter", ("grey",)),
    ("Driftline", "hammock", ("sky blue", "forest")),
    ("Siesta Double", "hammock", ("sunset", "charcoal")),
    ("Loft Air", "sleeping pad", ("yellow", "orange")),
    ("Loft Foam", "sleeping pad", ("blue", "green")),
    ("Glacier 45", "cooler", ("white", "sand", "seafoam")),
    ("Glacier 20 Soft", "cooler", ("grey", "coral")),
    ("Cormorant 230", "kayak paddle", ("black/yellow",)),
    ("Tern Carbon", "kayak paddle", ("black",)),
    ("Crux", "climbing harness", ("blue", "purple")),
    ("Crux Alpine", "climbing harness", ("grey",)),
    ("Trailmix Crew", "wool socks", ("charcoal", "berry", "oatmeal")),
    ("Summit Heavy", "wool socks", ("grey", "forest")),
    ("Waypoint 2", "GPS watch", ("black", "slate")),
    ("Waypoint Solar", "GPS watch", ("graphite",)),
    ("Lazy Ridge", "camp chair", ("navy", "red", "olive")),
    ("Fireside Rocker", "camp chair", ("black", "heather grey")),
    ("Glowworm", "lantern", ("white", "orange")),
    ("Glowworm Solar", "lantern", ("green",)),
    ("Canteen 32", "insulated bottle", ("sage", "black", "coral", "sky")),
    ("Canteen 20", "insulated bottle", ("white", "navy")),
)
"""Products: (name, kind key, colors). Every kind has at least two products."""


# ------------------------------------------------------------------------------------------- shared slots

WHEN = (
    "last week",
    "two weeks ago",
    "on Monday",
    "last Friday",
    "at the start of the month",
    "over a week ago",
    "ten days ago",
    "on Sunday night",
    "the day before yesterday",
    "right after the holiday sale",
    "three weeks ago",
    "last Tuesday",
)
WHEN_LONG = (
    "about two months ago",
    "back in March",
    "last fall",
    "around 45 days ago",
    "right before Christmas",
    "at the end of last season",
    "six weeks ago",
)
DEADLINE = (
    "Friday",
    "next weekend",
    "the 14th",
    "Saturday morning",
    "the end of the month",
    "Thursday",
    "the long weekend",
)
PLACES = (
    "the Sawtooths",
    "the Smokies",
    "Yosemite",
    "the Boundary Waters",
    "Zion",
    "the White Mountains",
    "Glacier",
    "the Olympic coast",
    "Big Bend",
    "the Adirondacks",
    "Banff",
    "the Wind Rivers",
    "Moab",
    "the Cascades",
)
TRIPS = (
    "a three-night backpacking trip",
    "a car camping weekend",
    "a week-long canoe trip",
    "my first solo overnight",
    "a winter hut trip",
    "a family camping trip",
    "a section hike",
    "a climbing trip",
    "a fastpacking loop",
    "a kayak tour",
    "a scout campout",
)
COMPANIONS = (
    "my wife",
    "my husband",
    "my brother",
    "two friends from work",
    "my daughter",
    "my son's scout troop",
    "my partner",
    "my dad",
    "the kids",
    "my hiking club",
)
SEASONS = ("spring", "summer", "fall", "winter")
TRIP_WHEN = ("next weekend", "this Friday", "in two weeks", "later this month", "over the long weekend", "in June")
CITIES = (
    "Denver",
    "Portland",
    "Seattle",
    "Boulder",
    "Salt Lake City",
    "Minneapolis",
    "Asheville",
    "Bend",
    "Burlington",
    "Missoula",
    "Chattanooga",
    "Flagstaff",
)
COUNTRIES = ("Canada", "Mexico", "the UK", "Germany", "Australia", "Japan", "Norway", "New Zealand")
PAYMENTS = ("PayPal", "Apple Pay", "two gift cards", "store credit", "a debit card", "installments")
PURPOSES = ("an expense report", "my records", "a warranty claim", "a gift receipt", "my taxes")
RETURN_REASONS = (
    # the first two are about fit: only for products that come in sizes
    ("it is too small", "too small"),
    ("it runs way bigger than the size chart", "runs large"),
    ("the color looks nothing like the photos", "color differs from the photos"),
    ("it is a lot heavier than I expected", "heavier than expected"),
    ("I ordered two by mistake", "ordered twice by mistake"),
    ("my trip got cancelled", "trip cancelled"),
    ("it was a gift and they already have one", "unwanted gift"),
    ("it arrived with scuffs all over it", "arrived scuffed"),
    ("it is just not comfortable", "uncomfortable"),
    ("it does not fit my gear the way I hoped", "does not fit the customer's needs"),
    ("I found a model that suits me better", "customer prefers another model"),
)


# --------------------------------------------------------------------------------------------- intents


@dataclass(frozen=True, slots=True)
class Intent:
    """One thing a customer asks: full sentences, terse forms, and the teacher's paraphrases.

    Every core, short and query of one intent means the same thing, so any query paraphrases any core.
    ``needs`` is ``"product"`` (any product), ``"sized"`` (a product that comes in sizes) or ``"policy"``
    (a store-policy question: core ``i`` is paraphrased by :data:`POLICY_QUERIES` ``[i]``).
    """

    cores: tuple[str, ...]
    shorts: tuple[str, ...]
    queries: tuple[str, ...]
    needs: str = "product"
    details: tuple[str, ...] = ()


PRODUCT_INTENTS: tuple[Intent, ...] = (
    Intent(
        cores=(
            "For the {name} {kind}, can you tell me {attr_u}?",
            "I'm looking at the {item} and I'm wondering {attr_u}.",
            "Could you find out {attr_u} on the {item}?",
            "Before I buy the {item} I want to know {attr_u}.",
            "Does anyone there know {attr_u} for the {name}?",
            "I can't find anywhere on the product page {attr_u} for the {item}.",
        ),
        shorts=("{name} {attr_q}?", "{attr_q} on the {name}?", "{name} {kind} - {attr_q}", "{attr_q} {name}"),
        queries=(
            "{Attr_q} of the {name} {kind}",
            "What is the {attr_q} of the {name} {kind}?",
            "Details on the {name} {kind}: {attr_q}",
            "{name} {kind} {attr_q}",
        ),
        details=(
            "The listing only shows the basic specs.",
            "I'm trying to decide between a few options.",
            "My old one was pretty bad in that respect.",
            "I want to get it right the first time.",
        ),
    ),
    Intent(
        cores=(
            "My {item} has a problem: {issue_u}. What should I do?",
            "I bought the {item} {when} and {issue_u}. Is there a fix for that?",
            "So {issue_u} on my {name} {kind}. How do I fix it?",
            "Help, {issue_u} on the {item} and I'm leaving {deadline}.",
        ),
        shorts=("{name} {kind}: {issue_q}", "{issue_q} on my {name}, fix?", "{name} {issue_q} help"),
        queries=(
            "How to fix {issue_q} on the {name} {kind}?",
            "Troubleshooting {issue_q} on the {name} {kind}",
            "{name} {kind} {issue_q}: repair options",
        ),
        details=(
            "I followed the instructions in the manual.",
            "I have only used it a couple of times.",
            "I'd rather fix it than send it back if I can.",
        ),
    ),
    Intent(
        cores=(
            "What's the real difference between the {name} and the {other} {kind}?",
            "I can't decide between the {name} and the {other}. Which {kind} would you pick?",
            "Is the {name} worth the extra money over the {other} {kind}?",
        ),
        shorts=("{name} vs {other}?", "{name} or {other} {kind}?"),
        queries=(
            "Comparison of the {name} and {other} {kind}",
            "Differences between the {name} and the {other} {kind}",
            "{name} vs {other} {kind}: which to choose",
        ),
        details=(
            "I mostly do weekend trips.",
            "Weight matters more to me than price.",
            "I care most about durability.",
        ),
    ),
    Intent(
        cores=(
            "Is the {name} {kind} in {color} in stock right now?",
            "Do you have the {name} {kind} in {color} at any of your stores?",
            "Will you restock the {color} {name} {kind} before {season}?",
        ),
        shorts=("{name} {color} in stock?", "{color} {name} restock?", "{name} {kind} in {color} available"),
        queries=(
            "Stock availability of the {name} {kind} in {color}",
            "When will the {name} {kind} in {color} be in stock?",
            "Is the {color} {name} {kind} available?",
        ),
    ),
    Intent(
        cores=(
            "When will the {item} be back in stock? It has said sold out for weeks.",
            "The {name} {kind} has been sold out forever. Are you getting more?",
        ),
        shorts=("any {name} {kind} left", "{name} restock date?"),
        queries=("Restock date for the {name} {kind}", "When will the {name} {kind} be back in stock?"),
    ),
    Intent(
        cores=(
            "I usually wear size {size}. Which size of the {name} {kind} should I get?",
            "How does the {name} {kind} fit? I'm between size {size} and the next size up.",
            "Does the {name} run small? I'm normally a size {size} in most brands.",
        ),
        shorts=("{name} sizing, I'm a {size}", "what size {name} {kind} for size {size}?"),
        queries=(
            "Size recommendation for the {name} {kind} for someone who usually wears {size}",
            "Sizing and fit of the {name} {kind} (customer normally wears {size})",
        ),
        needs="sized",
        details=("I have broad shoulders.", "I like to layer underneath.", "I have slightly wide feet."),
    ),
    Intent(
        cores=(
            "What does the warranty cover on the {item}?",
            "How long is the warranty on the {name} {kind}, and do I need the receipt?",
        ),
        shorts=("{name} warranty?", "warranty on {name} {kind}"),
        queries=("Warranty coverage and length for the {name} {kind}", "Warranty terms of the {name} {kind}"),
    ),
    Intent(
        cores=(
            "Is it covered by the warranty if {issue_u} on the {name}?",
            "Would the warranty on my {item} cover it if {issue_u}?",
        ),
        shorts=("{issue_q} on {name}, warranty?",),
        queries=(
            "Does the warranty on the {name} {kind} cover {issue_q}?",
            "Warranty coverage of {issue_q} on the {name} {kind}",
        ),
    ),
    Intent(
        cores=(
            "How should I clean the {item} after a muddy trip?",
            "What's the best way to store my {name} {kind} over the {season}?",
            "Can I machine wash the {name} {kind}, or will that ruin it?",
        ),
        shorts=("how to clean {name} {kind}", "{name} care instructions?"),
        queries=(
            "Care instructions (cleaning and storage) for the {name} {kind}",
            "How to clean, wash and store the {name} {kind}",
        ),
    ),
    Intent(
        cores=(
            "I'm planning {trip} in {place} this {season}. Would the {name} {kind} be enough?",
            "Is the {item} a good choice for {trip} in {place}?",
            "Would you recommend the {name} {kind} for {trip}, or is it overkill?",
        ),
        shorts=("{name} ok for {trip}?", "{name} {kind} good for {place}?"),
        queries=(
            "Is the {name} {kind} suitable for {trip}?",
            "Suitability of the {name} {kind} for {trip}",
        ),
    ),
    Intent(
        cores=(
            "Do you ship to {country}, and how long does delivery take?",
            "Can I pay with {payment} on your website?",
            "Do you have a shop in {city}, and what are the opening hours?",
            "Do you price match if I find a {kind} cheaper somewhere else?",
            "What is your general return policy on {kinds} that were used outdoors once?",
            "Is there a discount for members of a hiking club or for students?",
        ),
        shorts=("ship to {country}?", "pay with {payment}?", "store in {city}?", "price match on {kinds}?"),
        queries=(
            "Store policy question: {policy_q}",
            "{Policy_q}",
        ),
        needs="policy",
    ),
)
"""Questions for the product advisor (``ToProductAdvisor``)."""

POLICY_QUERIES = (
    "shipping to {country} and delivery times",
    "paying with {payment} online",
    "shop location and opening hours in {city}",
    "price matching on {kinds}",
    "return policy for {kinds} used outdoors",
    "discounts for hiking club members or students",
)
"""Teacher paraphrases of the policy cores, index by index."""

ORDER_INTENTS: tuple[Intent, ...] = (
    Intent(
        cores=(
            "I ordered the {item} {when} and it still hasn't shown up.",
            "I placed an order for the {item} {when}, it should be here by now but nothing yet.",
            "Where is my {item}? I placed the order {when}.",
            "Any update on my {name} {kind}? I ordered it {when} and the tracking hasn't moved.",
        ),
        shorts=("where is my {name} {kind}", "{name} order still not here", "status of my {name} order??"),
        queries=(
            "Where is the {name} {kind} order placed {when}?",
            "Why hasn't the {name} {kind} order arrived yet?",
            "Delivery status of the {name} {kind} order from {when}",
        ),
        details=(
            "The tracking page hasn't updated in days.",
            "I paid for faster shipping.",
            "The confirmation email said three to five days.",
        ),
    ),
    Intent(
        cores=(
            "Can I get the tracking number for the {item}? I ordered it {when}.",
            "I never got a shipping email for my {name} {kind}. Has it shipped?",
            "Which carrier is bringing my {item}, and is there a tracking link?",
        ),
        shorts=("tracking # for {name}?", "has my {name} shipped"),
        queries=(
            "Shipping status and tracking number for the {name} {kind} order",
            "Tracking details for the {name} {kind} order",
        ),
    ),
    Intent(
        cores=(
            "What did I order {when_long}? I need the details for {purpose}.",
            "Can you pull up my purchase history from {when_long}? It's for {purpose}.",
        ),
        shorts=("my orders from {when_long}? for {purpose}", "order history {when_long}, {purpose}"),
        queries=("Order history from {when_long} (needed for {purpose})", "Items ordered {when_long}, for {purpose}"),
    ),
    Intent(
        cores=(
            "I bought a {kind} from you {when_long} but can't remember which model. Can you look it up?",
            "Which {kind} did I buy {when_long}? I want to get the same one again.",
        ),
        shorts=("which {kind} did I buy {when_long}",),
        queries=("Which {kind} model was purchased {when_long}?", "Look up the {kind} bought {when_long}"),
    ),
    Intent(
        cores=(
            "I was charged {amount} for the {item} but the price said {amount2}. Can you check my order?",
            "My order total for the {item} shows {amount}, but it was listed at {amount2}.",
        ),
        shorts=("charged {amount} for {name}, price was {amount2}?",),
        queries=(
            "Charge of {amount} on the {name} {kind} order versus listed price {amount2}",
            "Order total {amount} instead of {amount2} for the {name} {kind}",
        ),
    ),
    Intent(
        cores=(
            "Why was my card charged twice for the {name} {kind}?",
            "I see two charges for the same {item} order on my statement.",
        ),
        shorts=("double charge on {name} order",),
        queries=("Possible double charge on the {name} {kind} order", "Duplicate charge for the {name} {kind} order"),
    ),
    Intent(
        cores=(
            "I ordered {qty} of the {name} {kind} but only one showed up.",
            "Only one {name} {kind} came, and I paid for {qty}.",
        ),
        shorts=("only got 1 of {qty} {name}",),
        queries=("Only one of {qty} {name} {kind} received", "Order of {qty} {name} {kind}: only one delivered"),
    ),
    Intent(
        cores=(
            "My box came with the {name} but the {other} from the same order is missing.",
            "The {other} {kind} I ordered together with the {name} never arrived.",
        ),
        shorts=("{other} missing from my order",),
        queries=(
            "{other} {kind} missing from the order that contained the {name}",
            "Missing item ({other} {kind}) in the order with the {name}",
        ),
    ),
    Intent(
        cores=(
            "My order for the {item} has said processing for {days} days.",
            "Why is my {name} {kind} order still stuck on processing after {days} days?",
        ),
        shorts=("{name} order stuck processing", "processing {days} days??"),
        queries=(
            "Why is the {name} {kind} order stuck in processing for {days} days?",
            "{name} {kind} order still processing: reason and ship date",
        ),
    ),
    Intent(
        cores=(
            "Tracking says my {item} was delivered {when} but it's not here.",
            "The package with my {name} {kind} shows as delivered, but it isn't at my door or with my neighbors.",
        ),
        shorts=("{name} says delivered but not here", "never got my {name}, says delivered"),
        queries=(
            "{name} {kind} order marked delivered but not received",
            "Package with the {name} {kind} shows delivered but never arrived",
        ),
    ),
    Intent(
        cores=(
            "Will my {item} arrive before {deadline}? I need it for {trip}.",
            "I need the {name} {kind} by {deadline}. Is my order going to make it?",
        ),
        shorts=("{name} here by {deadline}?", "will {name} arrive by {deadline}"),
        queries=(
            "Will the {name} {kind} order arrive before {deadline}?",
            "Expected delivery date of the {name} {kind} order (needed by {deadline})",
        ),
    ),
)
"""Questions for the order tracking desk (``ToOrderTracking``)."""

RETURN_INTENTS: tuple[Intent, ...] = (
    Intent(
        cores=(
            "I'd like to return the {item} because {reason_u}.",
            "How do I send back my {item}? Honestly {reason_u}.",
            "I want my money back for the {name} {kind}, {reason_u}.",
            "Can you help me return the {item}? {Reason_u}.",
        ),
        shorts=("return {name}, {reason_q}", "want to return my {name} {kind}", "{name} return pls"),
        queries=(
            "Start a return for the {name} {kind} ({reason_q})",
            "Return the {name} {kind}: {reason_q}",
            "Customer wants to return the {name} {kind}, reason: {reason_q}",
        ),
        details=(
            "The tags are still on it.",
            "I still have the original box.",
            "I only tried it on at home.",
            "I bought it in your {city} shop.",
        ),
    ),
    Intent(
        cores=(
            "I sent back the {item} {when}. Has the return been processed yet?",
            "What's the status of my return? I mailed the {name} {kind} back {when}.",
            "Did you get the {name} {kind} I mailed back {when}?",
        ),
        shorts=("status of {name} return?", "did u get my {name} back"),
        queries=(
            "Status of the return of the {name} {kind} sent {when}",
            "Has the returned {name} {kind} been received and processed?",
        ),
    ),
    Intent(
        cores=(
            "My return of the {item} was received {when} but I still don't see the refund.",
            "Where is my refund for the {name} {kind}? It's been {days} days.",
        ),
        shorts=("refund for {name}??", "still no refund {name} {kind}"),
        queries=("Refund not received for the returned {name} {kind}", "Missing refund for the {name} {kind} return"),
    ),
    Intent(
        cores=(
            "Can I exchange my {name} {kind} for a size {size2}? {reason_fit}",
            "The {item} doesn't fit. I'd like to swap it for a {size2} instead.",
        ),
        shorts=("exchange {name} for {size2}", "swap {name} to size {size2}?"),
        queries=(
            "Exchange the {name} {kind} for size {size2}",
            "Size exchange of the {name} {kind} to {size2}",
        ),
        needs="sized",
    ),
    Intent(
        cores=(
            "How do I get a return label for the {item}?",
            "I want to send back the {name} {kind} but the return label link isn't working.",
        ),
        shorts=("return label for {name}?", "need label to return {name}"),
        queries=("Return shipping label for the {name} {kind}", "Help getting a return label for the {name} {kind}"),
    ),
    Intent(
        cores=(
            "I bought the {item} {when_long}. Can I still return it even though I used it on {trip}?",
            "Is it too late to return my {name} {kind}? I got it {when_long}.",
        ),
        shorts=("can I still return {name}?", "too late to return {name} {kind}?"),
        queries=(
            "Return eligibility for the {name} {kind} bought {when_long}",
            "Can the {name} {kind} bought {when_long} still be returned?",
        ),
    ),
    Intent(
        cores=(
            "I ordered the {name} but got the {other} {kind} instead. I need to send it back.",
            "You sent me the {other} instead of the {name} {kind} I paid for. How do I return it?",
        ),
        shorts=("got {other} instead of {name}",),
        queries=(
            "Wrong item received ({other} instead of {name} {kind}), return needed",
            "Return the {other} {kind} received instead of the ordered {name}",
        ),
    ),
    Intent(
        cores=(
            "The {item} arrived damaged: {issue_u}. I want to return it.",
            "The box was crushed and {issue_u} on the {name}. How do I return it?",
        ),
        shorts=("{name} arrived broken, return", "{name} damaged on arrival, return"),
        queries=(
            "Return of the damaged {name} {kind} ({issue_q})",
            "Return request: {name} {kind} arrived with {issue_q}",
        ),
    ),
    Intent(
        cores=(
            "Can I return the {item} at your {city} shop instead of mailing it?",
            "I'm near your {city} store. Can I drop off my {name} {kind} return there?",
        ),
        shorts=("return {name} in store {city}?",),
        queries=(
            "In-store return of the {name} {kind} at the {city} shop",
            "Drop off the {name} {kind} return at the {city} store",
        ),
    ),
)
"""Requests for the returns desk (``ToReturnsDesk``)."""

ORDER_REFS = (
    "The order number is {order_no}.",
    "Order number {order_no}.",
    "It's order #{order_no}.",
    "Order #{order_no} if that helps.",
    "My order number is {order_no}, in case you need it.",
)
"""How customers mention an order number (the teacher's query then ends with ``(order NW123456)``)."""

FIT_REASONS = (
    "The sleeves are too short.",
    "It's tight across the chest.",
    "My toes hit the front on downhills.",
    "It's way too roomy.",
    "",
)


# ------------------------------------------------------------------------------------------- small talk


@dataclass(frozen=True, slots=True)
class Topic:
    """Something out of scope: what customers say about it, and the teacher's name for it."""

    cores: tuple[str, ...]
    shorts: tuple[str, ...]
    topic: str


SMALL_TALK_TOPICS: tuple[Topic, ...] = (
    Topic(
        (
            "Do you know any good {cuisine} places near {city}?",
            "Where can I get decent {cuisine} food in {city} after a long hike?",
        ),
        ("best {cuisine} in {city}?",),
        "restaurant recommendations",
    ),
    Topic(
        (
            "What's the weather supposed to be like in {city} this weekend?",
            "Is it going to rain in {place} on {deadline}?",
        ),
        ("weather in {city} this weekend?",),
        "weather forecasts",
    ),
    Topic(
        (
            "What's the prettiest day hike in {place}?",
            "Which trail in {place} has the best views for a beginner?",
        ),
        ("best hike in {place}?",),
        "trail recommendations",
    ),
    Topic(
        ("Tell me a joke about {animal}.", "Do you know any good jokes about {animal}?"),
        ("joke about {animal} pls",),
        "jokes",
    ),
    Topic(
        ("Can you write a short poem about {thing}?", "Write me a haiku about {thing}, please."),
        ("haiku about {thing}",),
        "creative writing",
    ),
    Topic(
        (
            "Can you help me with my homework? I'm stuck on {subject_topic}.",
            "How do I explain {subject_topic} to my kid? We keep going in circles.",
        ),
        ("help with {subject_topic}?",),
        "homework",
    ),
    Topic(
        (
            "Who do you think wins tonight, {team} or {team2}?",
            "Did {team} win last night? I missed the game.",
        ),
        ("{team} score?",),
        "sports results and predictions",
    ),
    Topic(
        ("Any good {genre} movies to watch tonight?", "Can you recommend a {genre} series to binge?"),
        ("good {genre} movie?",),
        "movie and TV recommendations",
    ),
    Topic(
        (
            "My {device} won't connect to the wifi. Any ideas?",
            "How do I reset my {device}? It keeps freezing.",
        ),
        ("{device} wont connect",),
        "tech support for other devices",
    ),
    Topic(
        (
            "How do I get my {pet} to stop {pet_habit}?",
            "Is it normal for a {pet} to keep {pet_habit}?",
        ),
        ("{pet} keeps {pet_habit}, help",),
        "pet advice",
    ),
    Topic(
        (
            "What's an easy {meal} I can cook over a campfire?",
            "Do you have a good recipe for {meal}?",
        ),
        ("{meal} recipe?",),
        "recipes",
    ),
    Topic(
        ("Hi there, how's your day going?", "Are you a real person or a bot?", "What's your name?"),
        ("hello", "hi are you a bot"),
        "general chit-chat",
    ),
    Topic(
        ("How do I get from {city} to {city2} by train?", "Is it cheaper to fly or drive from {city} to {city2}?"),
        ("{city} to {city2} by train?",),
        "travel planning",
    ),
    Topic(
        ("How tall is {mountain}?", "Has anyone ever skied down {mountain}?"),
        ("height of {mountain}?",),
        "general trivia",
    ),
    Topic(
        ("What is {a} times {b}?", "Can you split a bill of {amount} between {n} people for me?"),
        ("{a} x {b}?",),
        "math questions",
    ),
    Topic(
        ("Should I {life_choice}?", "My friend says I should {life_choice}. What do you think?"),
        ("should I {life_choice}",),
        "personal advice",
    ),
)
"""Out-of-scope topics for ``HandleSmallTalk``."""

SMALL_TALK_SLOTS: dict[str, tuple[str, ...]] = {
    "cuisine": ("Thai", "ramen", "taco", "pizza", "Ethiopian", "vegan", "barbecue", "sushi", "Greek"),
    "animal": ("bears", "penguins", "moose", "raccoons", "cats", "llamas", "squirrels"),
    "thing": ("autumn leaves", "a mountain lake", "my dog", "the first snow", "coffee", "a long drive"),
    "subject_topic": (
        "long division",
        "balancing equations",
        "the causes of the First World War",
        "Newton's third law",
        "photosynthesis",
        "the Pythagorean theorem",
        "fractions",
    ),
    "team": ("the Hawks", "the Rangers", "the Comets", "the Mariners", "the Thunder", "the Pioneers"),
    "team2": ("the Wolves", "the Kings", "the Storm", "the Giants", "the Rockets"),
    "genre": ("horror", "comedy", "sci-fi", "documentary", "thriller", "animated"),
    "device": ("printer", "smart TV", "laptop", "router", "tablet", "game console"),
    "pet": ("dog", "cat", "puppy", "parrot", "rabbit"),
    "pet_habit": ("chewing shoes", "barking at night", "scratching the couch", "pulling on the leash"),
    "meal": ("breakfast burrito", "chili", "banana bread", "pasta dish", "stir fry", "pancake"),
    "city2": ("Chicago", "San Francisco", "Vancouver", "Austin", "Boston", "Phoenix"),
    "mountain": ("Mount Rainier", "Denali", "Mont Blanc", "Kilimanjaro", "Mount Whitney", "Aconcagua"),
    "life_choice": (
        "quit my job and travel for a year",
        "move to the mountains",
        "get a second dog",
        "go back to school",
        "learn to play the guitar",
    ),
}
"""Fillers of the small-talk templates (besides the shared slots)."""

SMALL_TALK_DETAILS = (
    "I've been wondering about it all day.",
    "My friends and I were arguing about this.",
    "Just curious what you think.",
    "No rush, I'm just bored at work.",
    "I figured you might know since you know everything.",
    "Sorry, random question.",
)

REDIRECT_ACKS = (
    "Thanks for reaching out!",
    "That sounds like fun!",
    "Good question!",
    "Hi there, and thanks for the message.",
    "I appreciate you asking.",
    "I hear you.",
    "Hello!",
)
REDIRECT_LIMITS = (
    "I'm the Northwind Outfitters support assistant, so I can't help with {topic}.",
    "Unfortunately, a question about {topic} is outside what I can help with here.",
    "As the assistant for Northwind Outfitters, I don't have information about {topic}.",
    "I'm only able to help with Northwind Outfitters questions, so I can't cover {topic}.",
)
REDIRECT_OFFERS = (
    "I'm happy to help with questions about our gear, your orders or a return.",
    "If you need anything about a product, an order or a return, just let me know.",
    "Is there anything about our products or your purchases I can help you with?",
    "Feel free to ask me about our camping and hiking gear, order status or returns.",
    "",
)


# ---------------------------------------------------------------------------------------------- moods

MOODS: tuple[str, ...] = ("polite", "frustrated", "terse", "rambling")
MOOD_WEIGHTS: dict[str, tuple[float, ...]] = {
    # per class, in MOODS order
    SMALL_TALK: (0.4, 0.05, 0.1, 0.45),
    PRODUCT: (0.4, 0.15, 0.2, 0.25),
    ORDERS: (0.25, 0.4, 0.15, 0.2),
    RETURNS: (0.3, 0.35, 0.15, 0.2),
}

TERSE_PREFIXES = ("", "", "", "", "hey ", "quick q: ", "hi, ", "question - ", "um ", "so ")
TERSE_SUFFIXES = ("", "", "", "", " thx", " asap", " ??", " pls", " thanks", " !!")

POLITE_OPENERS = (
    "Hi there!",
    "Hello,",
    "Good morning!",
    "Hi, hope you're doing well.",
    "Hey, quick question.",
    "Hello Northwind team,",
    "Hi! I was hoping you could help me.",
    "Good afternoon.",
    "Hey there,",
    "Hi, I have a question.",
    "",
)
POLITE_CLOSERS = (
    "Thanks so much!",
    "Thank you in advance.",
    "I'd really appreciate your help.",
    "Thanks!",
    "Any help would be great, thank you.",
    "Thanks for your time.",
    "Have a nice day!",
    "Cheers.",
)
FRUSTRATED_OPENERS = (
    "Seriously?",
    "Okay, I'm getting really annoyed now.",
    "This is ridiculous.",
    "Not happy right now.",
    "Third time asking about this.",
    "I can't believe I have to ask again.",
    "Honestly, this is so frustrating.",
    "Ugh.",
    "",
)
FRUSTRATED_EXTRAS = (
    "I've already waited long enough.",
    "Nobody has gotten back to me.",
    "I need this sorted out today.",
    "I expected a lot better from you guys.",
    "Your website is no help at all.",
    "I've spent way too much time on this already.",
    "I've been a customer for years and this has never happened.",
    "I'm about to dispute the charge with my bank.",
)
FRUSTRATED_CLOSERS = (
    "Please fix this.",
    "Can someone actually answer me?",
    "I want an answer today.",
    "What is going on?",
    "Just tell me what's happening.",
    "",
)
BACKSTORIES = (
    "So I'm heading to {place} with {companion} {trip_when}, and I'm trying to get organized.",
    "Long story short, {companion} talked me into {trip} this {season}.",
    "I've been getting back into camping after a few years off, and {companion} will come along.",
    "We just got back from {trip} in {place}, which was amazing by the way.",
    "I'm putting together gear for {trip} in {place}.",
    "Okay so this might be a long one, sorry.",
    "A friend of mine in {city} recommended your store.",
    "I've been shopping with you since I started hiking, so I figured I'd ask here.",
    "Background: {companion} and I are doing {trip} {trip_when}.",
)
TANGENTS = (
    "Also the new website looks great.",
    "By the way, the staff at your {city} shop were super helpful last time.",
    "Anyway, that's my situation.",
    "I know it's a lot of detail, sorry!",
    "Fingers crossed the weather holds.",
    "We're hoping to catch the fall colors.",
    "It's our first big trip with the kids.",
    "",
)
FOLLOW_UP_PREFIXES = (
    "Thanks. One more thing:",
    "Great, thanks. Also,",
    "Okay. Another question:",
    "Got it. Separately,",
    "Thanks for that. ",
)

# ------------------------------------------------------------------------------------ teacher text answers

TEXT_ANSWERS: dict[str, tuple[str, ...]] = {
    SMALL_TALK: (
        "Hi! I'm the Northwind Outfitters assistant. I can help with product questions, orders and returns. "
        "What can I do for you today?",
        "Thanks for the message! I'm here for anything about our gear, your orders or returns.",
    ),
    PRODUCT: (
        "Happy to help! Could you tell me which model you're looking at so I can find the right details?",
        "Sure. Is this for the product you already own, or one you're thinking of buying?",
        "Good question. Which size or version do you have in mind?",
    ),
    ORDERS: (
        "I can look into that. Could you share the order number from your confirmation email?",
        "Sorry for the wait. Which order is this about, and roughly when did you place it?",
        "Let me help with that. Do you have the order number handy?",
    ),
    RETURNS: (
        "I can help with the return. Which item would you like to send back, and was it bought online?",
        "Sorry it didn't work out. Could you tell me the order number and the reason for the return?",
        "Of course. Is the item unused, and do you still have the packaging?",
    ),
}
"""Plain-text teacher answers (no tool call), by the class of the user's message."""

# ----------------------------------------------------------------------------------------- tool results

ORDER_STATUSES = ("processing", "shipped", "in transit", "out for delivery", "delivered", "delayed")
RETURN_STATUSES = ("label issued", "in transit", "received", "inspected", "refunded")
CARRIERS = ("UPS", "FedEx", "USPS", "DHL")
PRODUCT_ANSWERS = (
    "The {name} {kind} is covered by our two-year warranty; see the care guide on the product page.",
    "Specs for the {name} {kind} are listed under Details; the manual is available as a PDF.",
    "The {name} {kind} ships from our Denver warehouse and is in stock in {color}.",
)

# ------------------------------------------------------------------------------------------- malformed

GARBAGE_LINES = (
    "2025-05-02T10:11:{sec:02d}Z ERROR upstream timeout after 30000 ms (request_id={hex})",
    "<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html> {hex}",
    "Traceback (most recent call last): ConnectionResetError: [Errno 104] peer reset {hex}",
    "request logged: model=teacher status=200 latency_ms={sec}{sec} id={hex}",
    "undefined {hex}",
)
"""Non-JSON lines that a real log stream sometimes carries."""
