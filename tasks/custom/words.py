"""Word lists for drawing names, places and codes from a task's seeded `random.Random`."""

from __future__ import annotations

import random
import string

FIRST_NAMES = (
    "Ada", "Alan", "Amara", "Bruno", "Carla", "Chen", "Dario", "Divya", "Elena", "Emil", "Farah", "Felix",
    "Grace", "Hana", "Hugo", "Ines", "Ivan", "Jonas", "Julia", "Kenji", "Lara", "Leo", "Lucia", "Malik",
    "Maya", "Nadia", "Noah", "Olga", "Omar", "Paula", "Pedro", "Quinn", "Rosa", "Sami", "Sofia", "Tariq",
    "Tess", "Uma", "Victor", "Wen", "Yara", "Zoe",
)
LAST_NAMES = (
    "Abbott", "Baker", "Castro", "Dubois", "Eriksen", "Fischer", "Garcia", "Haddad", "Ito", "Jensen",
    "Kowalski", "Larsen", "Moreau", "Nakamura", "Okafor", "Petrov", "Quint", "Rossi", "Silva", "Tanaka",
    "Ueda", "Vargas", "Weber", "Xu", "Yilmaz", "Zimmer",
)
CITIES = (
    "Lisbon", "Oslo", "Porto", "Lyon", "Graz", "Ghent", "Turin", "Krakow", "Tartu", "Bergen", "Malmo",
    "Seville", "Bilbao", "Leipzig", "Utrecht", "Aarhus", "Split", "Brno", "Cork", "Basel",
)
STREETS = ("Oak", "Mill", "River", "Station", "Church", "Harbour", "Garden", "Market", "Hill", "Bridge")
DEPARTMENTS = ("Sales", "Finance", "Support", "Research", "Legal", "Design", "Logistics", "Marketing")
WORDS = (
    "amber", "birch", "cobalt", "delta", "ember", "falcon", "granite", "harbor", "indigo", "juniper",
    "kestrel", "lumen", "maple", "nimbus", "onyx", "pepper", "quartz", "raven", "saffron", "tundra",
)


def person(rng: random.Random) -> tuple[str, str]:
    return rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)


def code(rng: random.Random, prefix: str = "", digits: int = 6, letters: int = 0) -> str:
    """A reference code like `ORD-482913` or `TRK-7QX20P`."""
    unambiguous_letters = string.ascii_uppercase.replace("O", "").replace("I", "")
    alphabet = string.digits if not letters else unambiguous_letters + string.digits
    body = "".join(rng.choice(alphabet) for _ in range(digits + letters))
    return f"{prefix}{body}"


def password(rng: random.Random) -> str:
    """A memorable password of at least 12 characters: word, digits, word."""
    first, second = rng.sample(WORDS, 2)
    return f"{first.capitalize()}-{rng.randint(1000, 9999)}-{second}"


def phone(rng: random.Random) -> str:
    return f"+351 {rng.randint(200, 999)} {rng.randint(100, 999)} {rng.randint(100, 999)}"
