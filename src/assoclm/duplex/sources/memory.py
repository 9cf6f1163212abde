"""Synthetic memory dialogues: seeded sessions in which the user states facts, corrects
some of them, chats, and then asks about every fact, with a ``Probe`` on each answer.

Holds the generator (``memory_dialogues``), the parser for its options as text
(``parse_memory_options``), and the vocabularies and templates the dialogues are written
from: about 300 first names, 30 relations, 50 objects, and dozens to hundreds of values per
attribute, so that the answers cannot be memorised.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from dataclasses import dataclass, field

from assoclm.duplex.protocol import Dialogue, Event, Probe

__all__ = ["CITIES", "CORRECTIONS", "NAMES", "RELATIONS", "SMALL_TALK", "TEMPLATES", "Fact",
           "memory_dialogue", "memory_dialogues", "parse_memory_options"]

# The vocabularies and templates are public: the scripted demo session (duplex/script.py)
# asks what these dialogues teach, and its test holds it to them.

NAMES = """
Ada Alma Amara Anika Astrid Aurora Beatrix Bianca Camila Carmen Cecilia Clara Daria Delia
Elena Elif Elodie Esme Fatima Freya Gemma Greta Hana Helga Imani Ines Ingrid Irene Isla
Jana Johanna Juno Kaia Keiko Kira Lana Layla Leona Lidia Lorena Lucia Lyra Magda Maia
Malika Marta Matilda Mei Mila Mina Miriam Nadia Naomi Nia Nina Noor Olga Olivia Paloma
Petra Priya Quinn Rania Rhea Rosa Ruth Sabine Sakura Salma Selma Signe Sofia Sunita
Talia Tamsin Thea Uma Ursula Valeria Vera Wanda Willa Xenia Yara Yasmin Yuki Zara Zelda
Zoe Adrian Ahmed Aldo Alexei Amir Anders Anton Arjun Arlo Axel Bastian Benedikt Boris
Bruno Caspar Cedric Dario Declan Dmitri Eamon Edgar Elias Emil Enzo Erik Ezra Felix
Fergus Florin Gideon Gustav Hamid Hans Hector Hugo Ibrahim Igor Ismael Ivo Jakob Jasper
Jonas Jorge Julian Kai Kenji Kofi Lars Leander Lionel Lorenzo Luca Magnus Malik Marco
Mateo Milan Milo Mohan Nikolai Nils Noel Oren Oscar Otto Pablo Pavel Pedro Quentin Rafael
Ravi Reuben Rolf Rufus Samir Sanjay Silas Stellan Stefan Tariq Teodor Tobias Tomas
Ulrich Umar Viktor Vincent Wendel Wilbur Xavier Yannick Yusuf Zane Zoltan Alvar Benno
Corin Dagny Evander Farah Gaspar Halvard Idris Jovan Kasimir Linnea Marisol Nerys Orla
Percival Rosalind Severin Tuva Valentin Wren Yolanda Zephyr Ansel Brigid Cosima Dorian
Emrys Fenna Gwyn Hollis Isolde Jorunn Kestrel Leif Maren Niamh Osric Pia Rune Saoirse
Torvald Ulla Vesna Wystan Ximena Ysolde Zdenka
""".split()

CITIES = """
Lisbon Oslo Nairobi Lima Hanoi Quito Dakar Perth Tallinn Riga Vilnius Krakow Gdansk Porto
Seville Valencia Bilbao Lyon Marseille Nantes Bordeaux Ghent Antwerp Utrecht Leiden Bremen
Leipzig Dresden Munich Zurich Geneva Basel Vienna Graz Salzburg Prague Brno Budapest
Zagreb Ljubljana Belgrade Sofia Bucharest Athens Thessaloniki Istanbul Ankara Izmir
Tbilisi Yerevan Baku Almaty Tashkent Karachi Lahore Delhi Mumbai Chennai Kolkata Pune
Jaipur Dhaka Colombo Kathmandu Bangkok Manila Jakarta Surabaya Singapore Seoul Busan Osaka
Kyoto Sapporo Taipei Shanghai Beijing Chengdu Wuhan Sydney Melbourne Brisbane Adelaide
Auckland Wellington Toronto Montreal Vancouver Calgary Ottawa Boston Chicago Denver Seattle
Portland Dallas Houston Miami Atlanta Nashville Detroit Havana Bogota Medellin Caracas
Santiago Montevideo Cordoba Recife Cairo Tunis Casablanca Marrakesh Accra Lagos Abuja
Kampala Kigali Luanda Harare Lusaka Windhoek Durban Edinburgh Glasgow Dublin Cork Cardiff
Bristol Leeds Helsinki Tampere Stockholm Gothenburg Malmo Copenhagen Aarhus Reykjavik
Bergen Trondheim Hamburg Cologne Stuttgart Rotterdam Brussels Luxembourg Turin Milan
Naples Palermo Florence Bologna Verona Genoa Valletta Nicosia Beirut Amman Muscat Doha
""".split()

_JOBS = """
baker nurse architect plumber pilot librarian carpenter electrician chef lawyer accountant
firefighter farmer journalist photographer translator veterinarian pharmacist surgeon
mechanic tailor florist barber gardener jeweller locksmith potter sculptor violinist
cellist drummer dancer actor poet novelist editor programmer engineer chemist biologist
astronomer geologist economist historian archaeologist banker cashier waiter bartender
butcher fisherman lifeguard midwife paramedic optician surveyor zookeeper beekeeper
blacksmith glassblower bookbinder cartographer welder upholsterer
""".split()

_FOODS = """
lasagna sushi paella ramen tacos curry risotto dumplings pancakes falafel hummus goulash
pierogi burritos moussaka couscous biryani kimchi gnocchi ravioli croissants waffles
omelettes pizza nachos samosas tiramisu cheesecake brownies meatballs porridge shakshuka
tempura ceviche empanadas gazpacho fondue quiche bagels lentils enchiladas baklava
churros strudel pretzels polenta
""".split()

_PETS = """
dog cat parrot hamster rabbit goldfish tortoise iguana ferret canary gecko snake
chinchilla hedgehog budgie cockatoo axolotl tarantula lizard pony goat duck turtle
""".split()

_COLORS = """
red blue green yellow orange purple pink brown black white grey violet indigo turquoise
teal navy maroon beige crimson scarlet lavender lilac magenta cyan amber gold silver
bronze copper olive khaki ochre ivory cream coral salmon peach plum mauve mustard
burgundy emerald jade charcoal
""".split()

RELATIONS = """
sister brother mother father aunt uncle cousin neighbour boss dentist landlord doctor
teacher grandmother grandfather roommate colleague coach niece nephew godmother son
daughter husband wife partner tutor
""".split() + ["best friend", "piano teacher", "swimming coach"]

_OBJECTS = """
sky grass car bike front-door umbrella backpack kitchen-wall phone-case mailbox scarf tent
boat mug sofa notebook garage-door jacket fence kite raincoat teapot suitcase rug wallet
lamp helmet bench gate toothbrush tractor van hat shed diary bathtub balloon bus canoe
kettle sweater roof
""".split()
# Things everyone shares are "the ..."; the rest are the user's own.
_SHARED_OBJECTS = {"sky", "grass", "fence", "gate", "bench", "bus", "roof", "mailbox", "shed"}

# Per attribute: how the user states it, how the user asks, how the model answers.
# {s}/{S}: subject (lower/upper first letter), {p}/{P}: its possessive, {v}: the value,
# {a}: "a" or "an" for the value. The first statement is also the one corrections use.
TEMPLATES: dict[str, tuple[tuple[str, ...], tuple[str, ...], str]] = {
    "color": (
        ("{S} is {v}.", "{S} is {v}, by the way."),
        ("What color is {s}?", "Do you remember what color {s} is?"),
        "{S} is {v}.",
    ),
    "name": (
        ("{P} name is {v}.", "{S} is called {v}."),
        ("What is {p} name?", "Do you remember {p} name?"),
        "{P} name is {v}.",
    ),
    "city": (
        ("{S} lives in {v}.", "{S} has a flat in {v} and lives there."),
        ("Where does {s} live?", "Which city does {s} live in?"),
        "{S} lives in {v}.",
    ),
    "job": (
        ("{S} works as {a} {v}.", "{S} is {a} {v} by trade."),
        ("What does {s} do for a living?", "What is {p} job?"),
        "{S} works as {a} {v}.",
    ),
    "age": (
        ("{S} is {v} years old.", "{S} just turned {v}."),
        ("How old is {s}?", "Do you know how old {s} is?"),
        "{S} is {v} years old.",
    ),
    "food": (
        ("{P} favourite food is {v}.", "{S} loves {v} more than any other food."),
        ("What is {p} favourite food?", "What food does {s} like best?"),
        "{P} favourite food is {v}.",
    ),
    "pet": (
        ("{S} has {a} {v} as a pet.", "{S} keeps {a} {v} at home as a pet."),
        ("What pet does {s} have?", "What kind of pet does {s} have?"),
        "{S} has {a} {v} as a pet.",
    ),
}
_VALUES = {"color": _COLORS, "name": NAMES, "city": CITIES, "job": _JOBS,
           "age": [str(n) for n in range(18, 90)], "food": _FOODS, "pet": _PETS}  # fmt: skip
_PERSON_ATTRIBUTES = ("city", "job", "age", "food", "pet")

_ACKS = ("Got it.", "Okay.", "Noted.", "Understood.", "Thanks, I'll remember that.",
         "All right, got it.", "Okay, I'll keep that in mind.", "Sure, noted.")  # fmt: skip
_UPDATE_ACKS = ("Okay, updated.", "Thanks for the correction.", "Got it, I'll use that instead.",
                "Noted, I've changed that.", "Understood, thanks for correcting me.")  # fmt: skip
# (prefix, whether the statement after it starts a new sentence)
CORRECTIONS = (("Actually, ", False), ("Sorry, I got that wrong: ", False),
                ("Correction: ", False), ("Wait, I misspoke. ", True),
                ("Let me correct that. ", True), ("Oops, my mistake. ", True))  # fmt: skip
_ANSWER_PREFIXES = ("", "", "You told me ", "As far as I remember, ", "From what you said, ")
SMALL_TALK = (
    ("How are you today?", "I'm doing well, thanks for asking."),
    ("I went for a long walk this morning.", "That sounds refreshing."),
    ("Do you like rainy days?", "They can be cosy, especially with a good book."),
    ("I'm thinking about learning to cook.", "That's a great idea. Start with something simple."),
    ("The weekend went by so fast.", "Weekends always seem to."),
    ("I finally finished the book I was reading.", "Congratulations! Did you enjoy the ending?"),
    ("Can you recommend a hobby?", "Drawing, hiking or learning an instrument are all rewarding."),
    ("I didn't sleep well last night.", "I'm sorry to hear that. Maybe a quiet evening will help."),
    ("What do you think about puzzles?", "They're a nice way to relax and focus."),
    ("I'm planning a trip next month.", "How exciting! I hope it goes smoothly."),
    ("My train was late again.", "That's frustrating. I hope the rest of the day was better."),
    ("I started going to the gym.", "Good for you! Sticking with it is the hardest part."),
    ("Tell me something interesting.", "Octopuses have three hearts."),
    ("It's been a busy week.", "It sounds like you deserve a rest."),
    ("I'm trying to drink more water.", "That's a healthy habit."),
    ("Do you enjoy music?", "I do. Music is a wonderful way to change a mood."),
    ("I watched a documentary about bees.", "Bees are fascinating; they communicate by dancing."),
    ("What's a good way to stay focused?", "Short breaks and a tidy desk help many people."),
    ("I can't decide what to have for dinner.", "Maybe something quick and warm."),
    ("I learned a new word today.", "Nice! Using it in a sentence helps it stick."),
    ("My plants are growing nicely.", "That's lovely. They must like their spot."),
    ("I'm a bit nervous about tomorrow.", "That's natural. You'll do better than you expect."),
    ("I cleaned the whole house today.", "That must feel great."),
    ("Do you think it will snow this year?", "It's hard to say, but it would be pretty."),
    ("I'm learning to play chess.", "Chess is a great game. Try studying a few openings."),
    ("I had a great cup of coffee this morning.", "A good coffee can make the whole morning."),
    ("Let's talk about something else for a bit.", "Sure, what's on your mind?"),
    ("I've been listening to a new podcast.", "Podcasts are great company on a commute."),
    ("The days are getting shorter.", "They are. Evenings come early this time of year."),
    ("I'm going to bed early tonight.", "That sounds like a good plan."),
)

Span = int | tuple[int, int]


@dataclass
class _Subject:
    user: str  # how the user says it: "my sister", "the sky", "Ada"
    model: str  # how the model says it: "your sister", "the sky", "Ada"


@dataclass
class Fact:
    """One fact of a memory dialogue, for tests and debugging.

    Attributes:
        subject: the user's wording of the subject ("my sister").
        attribute: a key of ``TEMPLATES``.
        values: every value stated, in order; the last one is the answer.
        mentions: index of the user event that states each value.
        question: index of the user event that asks about the fact.
    """

    subject: str
    attribute: str
    values: list[str]
    mentions: list[int] = field(default_factory=list)
    question: int = -1


def _span(name: str, value: Span, minimum: int) -> tuple[int, int]:
    low, high = (value, value) if isinstance(value, int) else tuple(value)
    if not (isinstance(low, int) and isinstance(high, int)) or not minimum <= low <= high:
        raise ValueError(
            f"{name} must be an int or a (low, high) pair of ints with {minimum} <= low <= high; "
            f"got {value!r}"
        )
    return low, high


def memory_dialogues(
    n: int,
    seed: int = 0,
    num_facts: Span = (2, 4),
    num_updates: Span = (1, 2),
    distractor_turns: Span = (1, 3),
    question_distance: Span | None = None,
) -> list[Dialogue]:
    """Seeded synthetic dialogues that state facts, correct some, chat, then ask about them.

    Each dialogue is a sequence of exchanges (a user event, then a model event):

    1. Statements: the user states ``num_facts`` facts ("The sky is blue.", "My sister's
       name is Ada.", "Ada lives in Oslo."), one per exchange; the model acknowledges
       briefly ("Got it.").
    2. Corrections: ``num_updates`` times the user corrects a fact ("Actually, the sky is
       red."), each at a random point after that fact's last mention. A fact may be
       corrected more than once; the model acknowledges ("Thanks for the correction.").
    3. Small talk: ``distractor_turns`` exchanges at random points after the first
       statement: between statements and corrections or after the last of them.
    4. If ``question_distance`` is given, that many more small-talk exchanges, so that at
       least this many exchanges separate the last statement or correction from the first
       question.
    5. Questions: one per fact, in random order ("What color is the sky?"); the model's
       answer states the latest value ("The sky is red."). Each answer carries a
       ``Probe(event_index=<the answer>, answer=<latest value>, kind=...)``, kind
       ``"updated"`` for a corrected fact and ``"untouched"`` otherwise.

    Subjects are people named from about 300 first names, the user's relations ("my
    sister", about 30) and objects ("the sky", "my car", about 50); attributes are a colour
    (objects) or a name, city, job, age, favourite food or pet (people); each has dozens to
    hundreds of values. Within one dialogue no subject or value is a substring of another,
    so every value names exactly one fact and a corrected value never contains the old one.

    Dialogue ``i`` depends only on ``(seed, i)``: ``memory_dialogues(5)[:3] ==
    memory_dialogues(3)``, and another seed gives other dialogues.

    Args:
        n: number of dialogues.
        seed: picks the dialogues.
        num_facts: facts per dialogue, an int or an inclusive ``(low, high)`` range, >= 1.
        num_updates: corrections per dialogue, int or range, >= 0.
        distractor_turns: scattered small-talk exchanges, int or range, >= 0.
        question_distance: small-talk exchanges just before the questions, int or range,
            >= 0; ``None`` adds none.

    Returns:
        Dialogues named ``"memory/<seed>/<i>"``.
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    spans = (
        _span("num_facts", num_facts, 1),
        _span("num_updates", num_updates, 0),
        _span("distractor_turns", distractor_turns, 0),
        (0, 0) if question_distance is None else _span("question_distance", question_distance, 0),
    )
    return [memory_dialogue(seed, i, *spans)[0] for i in range(n)]


# memory_dialogues keyword -> the smallest value it takes.
_MEMORY_OPTION_MINIMA = {"num_facts": 1, "num_updates": 0, "distractor_turns": 0,
                         "question_distance": 0}


def parse_memory_options(text: str) -> dict[str, Span]:
    """``memory_dialogues`` keyword arguments from text such as
    ``"num_facts=2,num_updates=1-2,distractor_turns=0"``.

    Each item is ``name=N`` or ``name=LOW-HIGH`` (an inclusive range); the names are the
    keywords of :func:`memory_dialogues` that shape a dialogue (``num_facts``,
    ``num_updates``, ``distractor_turns``, ``question_distance``), each at most once.

    Raises:
        ValueError: empty text, an unknown or repeated name, or a value that is not a
            count or range of counts allowed for that name; the message names the item.
    """
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"memory options must be a non-empty text such as "
                         f"'num_facts=2,num_updates=1-2'; got {text!r}")
    options: dict[str, Span] = {}
    for item in text.split(","):
        name, sep, value = (part.strip() for part in item.partition("="))
        if name not in _MEMORY_OPTION_MINIMA:
            raise ValueError(f"unknown memory option {name!r} in {text!r}; the options are "
                             f"{', '.join(_MEMORY_OPTION_MINIMA)}")
        if name in options:
            raise ValueError(f"memory option {name!r} appears twice in {text!r}")
        match = re.fullmatch(r"(\d+)(?:\s*-\s*(\d+))?", value) if sep else None
        if match is None:
            raise ValueError(f"memory option {item.strip()!r} in {text!r} must be "
                             f"{name}=N or {name}=LOW-HIGH with whole numbers")
        low = int(match.group(1))
        span = low if match.group(2) is None else (low, int(match.group(2)))
        _span(name, span, _MEMORY_OPTION_MINIMA[name])
        options[name] = span
    return options


def memory_dialogue(
    seed: int,
    index: int,
    num_facts: tuple[int, int],
    num_updates: tuple[int, int],
    distractor_turns: tuple[int, int],
    question_distance: tuple[int, int],
) -> tuple[Dialogue, list[Fact]]:
    """Memory dialogue ``index`` of ``seed`` (see :func:`memory_dialogues`, which takes its
    first element) and its facts: what was stated, corrected and asked, and where."""
    # A string seed is hashed with SHA-512: the same in every process, unlike hash().
    rng = random.Random(f"assoclm-memory:{seed}:{index}")
    n_facts = rng.randint(*num_facts)
    n_updates = rng.randint(*num_updates)
    n_scattered = rng.randint(*distractor_turns)
    n_gap = rng.randint(*question_distance)

    used: list[str] = []
    subjects: dict[str, _Subject] = {}
    facts: list[Fact] = []
    while len(facts) < n_facts:
        subject, attribute = _draw_subject(rng)
        taken = {(f.subject, f.attribute) for f in facts}
        if (subject.user, attribute) in taken:
            continue
        if subject.user not in subjects and not _fresh(subject.user, used):
            continue
        value = _draw_value(rng, attribute, used)
        if subject.user not in subjects:
            subjects[subject.user] = subject
            used.append(subject.user.lower())
        facts.append(Fact(subject.user, attribute, [value]))

    # Steps: ("state" | "correct", fact) or ("chat", None).
    steps: list[tuple[str, Fact | None]] = [("state", f) for f in facts]
    for _ in range(n_updates):
        fact = rng.choice(facts)
        fact.values.append(_draw_value(rng, fact.attribute, used))
        last = max(k for k, (_, f) in enumerate(steps) if f is fact)
        steps.insert(rng.randint(last + 1, len(steps)), ("correct", fact))
    for _ in range(n_scattered):
        steps.insert(rng.randint(1, len(steps)), ("chat", None))
    steps.extend([("chat", None)] * n_gap)
    questions = facts[:]
    rng.shuffle(questions)

    chats = rng.sample(SMALL_TALK, min(len(SMALL_TALK), n_scattered + n_gap))
    seen: Counter[int] = Counter()
    events: list[Event] = []
    probes: list[Probe] = []
    for kind, fact in steps:
        if fact is None:
            user, model = chats.pop() if chats else rng.choice(SMALL_TALK)
        else:
            subject = subjects[fact.subject]
            k = seen[id(fact)]
            seen[id(fact)] += 1
            fact.mentions.append(len(events))
            if kind == "state":
                template = rng.choice(TEMPLATES[fact.attribute][0])
                user = _render(template, subject.user, fact.values[0], start=True)
                model = rng.choice(_ACKS)
            else:
                user = _correction(rng, fact, subject, fact.values[k - 1], fact.values[k])
                model = rng.choice(_UPDATE_ACKS)
        events += [Event("user", user), Event("model", model)]
    for fact in questions:
        subject = subjects[fact.subject]
        _, asks, answer = TEMPLATES[fact.attribute]
        fact.question = len(events)
        question = _render(rng.choice(asks), subject.user, "", start=True)
        prefix = rng.choice(_ANSWER_PREFIXES)
        reply = prefix + _render(answer, subject.model, fact.values[-1], start=not prefix)
        events += [Event("user", question), Event("model", reply)]
        kind = "updated" if len(fact.values) > 1 else "untouched"
        probes.append(Probe(len(events) - 1, fact.values[-1], kind))
    return Dialogue(f"memory/{seed}/{index}", events, probes), facts


def _draw_subject(rng: random.Random) -> tuple[_Subject, str]:
    kind = rng.choices(("person", "relation", "object"), weights=(4, 4, 2))[0]
    if kind == "person":
        name = rng.choice(NAMES)
        return _Subject(name, name), rng.choice(_PERSON_ATTRIBUTES)
    if kind == "relation":
        relation = rng.choice(RELATIONS)
        attribute = rng.choice(("name",) + _PERSON_ATTRIBUTES)
        return _Subject(f"my {relation}", f"your {relation}"), attribute
    thing = rng.choice(_OBJECTS).replace("-", " ")
    if thing in _SHARED_OBJECTS:
        return _Subject(f"the {thing}", f"the {thing}"), "color"
    return _Subject(f"my {thing}", f"your {thing}"), "color"


def _fresh(text: str, used: list[str]) -> bool:
    """No substring relation with anything already in the dialogue."""
    low = text.lower()
    return all(low not in u and u not in low for u in used)


def _draw_value(rng: random.Random, attribute: str, used: list[str]) -> str:
    while True:
        value = rng.choice(_VALUES[attribute])
        if _fresh(value, used):
            used.append(value.lower())
            return value


def _render(template: str, subject: str, value: str, start: bool) -> str:
    possessive = subject + "'s"
    text = template.format(
        s=subject, S=subject[0].upper() + subject[1:], p=possessive,
        P=possessive[0].upper() + possessive[1:], v=value,
        a="an" if value[:1].lower() in "aeiou" else "a",
    )  # fmt: skip
    if not start and template.startswith(("{S}", "{P}")):
        text = text[0].lower() + text[1:] if subject[0].islower() else text
    return text


def _correction(
    rng: random.Random, fact: Fact, subject: _Subject, old: str, new: str
) -> str:
    prefix, sentence = rng.choice(CORRECTIONS)
    statement = _render(TEMPLATES[fact.attribute][0][0], subject.user, new, start=sentence)
    if rng.random() < 0.3:
        statement = statement.removesuffix(".") + f", not {old}."
    return prefix + statement
