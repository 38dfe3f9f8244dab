"""Sentence generator: a small semantic grammar over :mod:`vocabulary` plus near-homophone carriers.

Sentences come out lowercase, words separated by single spaces, no punctuation except
apostrophes (possessives), ready to be upper-cased into a LibriSpeech transcript.  A sentence may
end in ``?`` (question intonation for the synthesizer); :func:`transcript` strips it.

Every draw takes a :class:`random.Random`, so a sentence is a pure function of the generator's
state.  Held-out words are removed from the vocabulary of a training-split generator, and any
candidate that still contains one (through a template alternative) is rejected.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from typing import Callable, Iterable

from . import vocabulary as V
from .pairs import HELDOUT_PAIRS, TEMPLATES, TRAIN_PAIRS

__all__ = [
    "SentenceGenerator",
    "Sentence",
    "article",
    "plural",
    "word_forms",
    "heldout_words",
    "train_pair_words",
    "transcript",
    "vocabulary_words",
    "expand_template",
]

_IRREGULAR_PLURALS = {
    "sheep": "sheep", "deer": "deer", "fish": "fish", "moose": "moose", "bison": "bison",
    "salmon": "salmon", "trout": "trout", "cod": "cod", "tuna": "tuna", "shrimp": "shrimp",
    "mouse": "mice", "goose": "geese", "ox": "oxen", "child": "children", "man": "men",
    "woman": "women", "foot": "feet", "tooth": "teeth", "knife": "knives", "leaf": "leaves",
    "wolf": "wolves", "loaf": "loaves", "shelf": "shelves", "calf": "calves", "half": "halves",
    "potato": "potatoes", "tomato": "tomatoes", "hero": "heroes", "echo": "echoes",
    "volcano": "volcanoes", "scarf": "scarves", "thief": "thieves", "wife": "wives",
    "life": "lives", "person": "people", "cactus": "cacti", "mango": "mangoes",
    "buffalo": "buffaloes", "domino": "dominoes", "chief": "chiefs", "roof": "roofs",
    "chef": "chefs", "giraffe": "giraffes", "sheepdog": "sheepdogs", "guinea": "guinea pigs",
}


def plural(noun: str) -> str:
    if noun in _IRREGULAR_PLURALS:
        return _IRREGULAR_PLURALS[noun]
    if re.search(r"(s|x|z|ch|sh)$", noun):
        return noun + "es"
    if re.search(r"[^aeiou]y$", noun):
        return noun[:-1] + "ies"
    return noun + "s"


_AN_EXCEPTIONS = ("hour", "honest", "honor", "heir")
_A_EXCEPTIONS = ("uni", "use", "usu", "eu", "one", "once", "uk", "ewe", "ure")


def article(word: str) -> str:
    """``a`` or ``an`` for the word that follows (by pronunciation, approximately)."""
    w = word.lower()
    if w.startswith(_AN_EXCEPTIONS):
        return "an"
    if w.startswith(_A_EXCEPTIONS):
        return "a"
    return "an" if w[:1] in "aeiou" else "a"


def _doubling(word: str) -> bool:
    return bool(re.search(r"[^aeiou][aeiou][bdgklmnprtv]$", word)) and len(word) <= 4


def word_forms(word: str) -> set[str]:
    """The word and the inflected forms that count as the same word for split hygiene."""
    forms = {word, plural(word), word + "s", word + "es", word + "ed", word + "d", word + "ing",
             word + "'s", plural(word) + "'"}
    if _doubling(word):
        forms |= {word + word[-1] + "ed", word + word[-1] + "ing", word + word[-1] + "y"}
    if word.endswith("e"):
        forms |= {word[:-1] + "ing"}
    return forms


def heldout_words() -> set[str]:
    return {w for pair in HELDOUT_PAIRS for w in pair}


def train_pair_words() -> set[str]:
    return {w for pair in TRAIN_PAIRS for w in pair}


def _banned_for_train() -> set[str]:
    banned: set[str] = set()
    for w in heldout_words():
        banned |= word_forms(w)
    return banned


def transcript(sentence: str) -> str:
    """LibriSpeech-style transcript: uppercase, words separated by single spaces, no punctuation
    except apostrophes."""
    words = re.sub(r"[^a-z' ]", " ", sentence.lower()).split()
    return " ".join(words).upper()


def vocabulary_words() -> set[str]:
    """Every distinct word the grammar and the templates can produce."""
    words: set[str] = set()
    for values in V.CATEGORIES.values():
        words |= set(values)
    for group in (V.VERBS_OBJECT, V.VERBS_FOOD, V.VERBS_ANIMAL, V.VERBS_PERSON, V.VERBS_INTRANS_PERSON,
                  V.VERBS_INTRANS_ANIMAL, V.VERBS_MOTION, V.VERBS_VEHICLE):
        for base, past in group:
            words |= {base, past}
    for phrase in V.TIME_PHRASES:
        words |= set(phrase.split())
    for tmpl in TEMPLATES.values():
        for t in tmpl:
            words |= set(re.findall(r"[a-z']+", re.sub(r"\{[a-z_0-9]+\}", " ", t)))
    words |= set(_FUNCTION_WORDS.split())
    return {w for w in words if w and w != "'"}


_FUNCTION_WORDS = """a an the my his her our their this that some every he she they we i you it
him them us me with to in on at by near under over into onto from for of and or but not no
there was were is are be been had has have did do does will would can could should
then when after before while because so very quite too also all each both one"""


@dataclass(frozen=True)
class Sentence:
    text: str  # lowercase, may end in "?"
    kind: str  # "pair:<word>" or "general:<pattern>"
    focus_word: str | None = None  # the near-homophone word the sentence was built around


class _Lists:
    """The vocabulary as seen by one generator (held-out words removed for training)."""

    def __init__(self, banned: set[str]):
        def keep(seq):
            return tuple(w for w in seq if w not in banned)

        def keep_verbs(seq):
            return tuple((b, p) for b, p in seq if b not in banned and p not in banned)

        self.people = keep(V.PEOPLE)
        self.names = keep(V.NAMES)
        self.animals = keep(V.ANIMALS)
        self.foods = keep(V.FOODS)
        self.foods_mass = keep(V.FOODS_MASS)
        self.drinks = keep(V.DRINKS)
        self.objects = keep(V.OBJECTS)
        self.furniture = keep(V.FURNITURE)
        self.containers = keep(V.CONTAINERS)
        self.clothing = keep(V.CLOTHING)
        self.vehicles = keep(V.VEHICLES)
        self.rooms = keep(V.ROOMS)
        self.buildings = keep(V.BUILDINGS)
        self.nature_places = keep(V.NATURE_PLACES)
        self.nature_in = keep(V.NATURE_PLACES_IN)
        self.nature_by = keep(V.NATURE_PLACES_BY)
        self.towns = keep(V.TOWNS)
        self.goods = keep(V.GOODS)
        self.plants = keep(V.PLANTS)
        self.adj_animal_color = keep(V.ADJ_ANIMAL_COLOR)
        self.adj_plant = keep(V.ADJ_PLANT)
        self.sports = keep(V.SPORTS)
        self.instruments = keep(V.INSTRUMENTS)
        self.adj_size = keep(V.ADJ_SIZE)
        self.adj_color = keep(V.ADJ_COLOR)
        self.adj_age = keep(V.ADJ_AGE)
        self.adj_condition = keep(V.ADJ_CONDITION)
        self.adj_mood = keep(V.ADJ_MOOD)
        self.adj_taste = keep(V.ADJ_TASTE)
        self.adj_weather = keep(V.ADJ_WEATHER)
        self.adverbs = keep(V.ADVERBS)
        self.numbers = keep(V.NUMBERS)
        self.time_phrases = tuple(p for p in V.TIME_PHRASES if not (set(p.split()) & banned))
        self.v_object = keep_verbs(V.VERBS_OBJECT)
        self.v_food = keep_verbs(V.VERBS_FOOD)
        self.v_animal = keep_verbs(V.VERBS_ANIMAL)
        self.v_person = keep_verbs(V.VERBS_PERSON)
        self.v_intrans_person = keep_verbs(V.VERBS_INTRANS_PERSON)
        self.v_intrans_animal = keep_verbs(V.VERBS_INTRANS_ANIMAL)
        self.v_motion = keep_verbs(V.VERBS_MOTION)
        self.v_vehicle = keep_verbs(V.VERBS_VEHICLE)
        self.adj_object = self.adj_size + self.adj_color + self.adj_age + self.adj_condition
        self.adj_animal = self.adj_size + self.adj_animal_color + self.adj_mood


_PRONOUNS = ("he", "she", "they", "we", "i")
_RELATIVES = ("uncle", "aunt", "cousin", "brother", "sister", "mother", "father", "grandmother",
              "grandfather", "neighbor", "friend", "teacher", "boss", "son", "daughter")
_POSSESSIVES = ("my", "his", "her", "our", "their")
_DETS = ("the", "the", "the", "a", "my", "his", "her", "our", "their", "this", "that")


class SentenceGenerator:
    """Draws sentences for one split.

    ``banned`` words never appear (a training generator bans the held-out pair words and their
    inflections).  ``pair_words`` are the near-homophone words whose carrier templates the
    generator may use.
    """

    def __init__(self, pair_words: Iterable[str], banned: Iterable[str] = ()):
        self.banned = set(banned)
        self.lists = _Lists(self.banned)
        self.pair_words = tuple(sorted(set(pair_words)))
        missing = [w for w in self.pair_words if w not in TEMPLATES]
        if missing:
            raise ValueError(f"no templates for pair words: {missing}")
        self._patterns: list[tuple[str, Callable[[random.Random], str], float]] = [
            ("object", self._p_object, 3.0),
            ("food", self._p_food, 2.0),
            ("animal", self._p_animal, 1.5),
            ("person", self._p_person, 1.5),
            ("intrans", self._p_intrans, 1.5),
            ("animal_intrans", self._p_animal_intrans, 1.2),
            ("motion", self._p_motion, 1.2),
            ("there_was", self._p_there_was, 0.8),
            ("want", self._p_want, 1.0),
            ("state", self._p_state, 0.8),
            ("count", self._p_count, 0.8),
            ("give", self._p_give, 0.8),
            ("put", self._p_put, 1.0),
            ("weather", self._p_weather, 0.5),
            ("vehicle", self._p_vehicle, 0.8),
            ("hobby", self._p_hobby, 0.6),
            ("question", self._p_question, 0.6),
            ("time_first", self._p_time_first, 0.8),
            ("garden", self._p_garden, 0.8),
        ]

    @classmethod
    def for_split(cls, split_kind: str) -> "SentenceGenerator":
        """``"train"``: training pairs only, held-out words banned; ``"eval"``: every pair."""
        if split_kind == "train":
            return cls(train_pair_words(), banned=_banned_for_train())
        if split_kind == "eval":
            return cls(train_pair_words() | heldout_words())
        raise ValueError(split_kind)

    # ---------------------------------------------------------------- pieces
    def _c(self, rng: random.Random, seq):
        return seq[rng.randrange(len(seq))]

    def subject(self, rng: random.Random) -> str:
        r = rng.random()
        L = self.lists
        if r < 0.35:
            return self._c(rng, L.names)
        if r < 0.65:
            return "the " + self._c(rng, L.people)
        if r < 0.8:
            return self._c(rng, _POSSESSIVES) + " " + self._c(rng, _RELATIVES)
        return self._c(rng, _PRONOUNS)

    def np(self, rng: random.Random, nouns, adjectives=None, adj_p: float = 0.55, det: str | None = None) -> str:
        noun = self._c(rng, nouns)
        words = []
        if adjectives and rng.random() < adj_p:
            words.append(self._c(rng, adjectives))
        words.append(noun)
        d = det or self._c(rng, _DETS)
        if d == "a":
            d = article(words[0])
        return d + " " + " ".join(words)

    def location(self, rng: random.Random) -> str:
        L = self.lists
        r = rng.random()
        if r < 0.3:
            return f"{self._c(rng, V.PREPS_ROOM)} the {self._c(rng, L.rooms)}"
        if r < 0.65:
            return f"{self._c(rng, V.PREPS_BUILDING)} the {self._c(rng, L.buildings)}"
        if r < 0.78:
            return f"{self._c(rng, V.PREPS_NATURE_IN)} the {self._c(rng, L.nature_in)}"
        if r < 0.9:
            prep = self._c(rng, V.PREPS_NATURE_BY)
            if prep in ("on", "along"):
                place = self._c(rng, ("beach", "shore", "riverbank", "hillside", "coast", "cliff", "island"))
            else:
                place = self._c(rng, L.nature_by)
            return f"{prep} the {place}"
        return f"in {self._c(rng, L.towns)}"

    def time(self, rng: random.Random) -> str:
        return self._c(rng, self.lists.time_phrases)

    def _opt(self, rng: random.Random, p: float, fn) -> str:
        return fn(rng) if rng.random() < p else ""

    @staticmethod
    def _join(*parts: str) -> str:
        return " ".join(p for p in parts if p)

    # ---------------------------------------------------------------- general patterns
    def _p_object(self, rng):
        L = self.lists
        base, past = self._c(rng, L.v_object)
        return self._join(self.subject(rng), past, self.np(rng, L.objects, L.adj_object),
                          self._opt(rng, 0.5, self.location), self._opt(rng, 0.4, self.time))

    def _p_food(self, rng):
        L = self.lists
        base, past = self._c(rng, L.v_food)
        if rng.random() < 0.7:
            obj = self.np(rng, L.foods, L.adj_taste)
        else:
            obj = self._c(rng, ("the", "some", "the", "their", "her", "his")) + " " + self._join(
                self._opt(rng, 0.5, lambda r: self._c(r, L.adj_taste)), self._c(rng, L.foods_mass))
        tail = self._c(rng, ("", "for breakfast", "for lunch", "for dinner", "for the party",
                             "with " + self._c(rng, L.names)))
        return self._join(self.subject(rng), past, obj, tail or self._opt(rng, 0.5, self.location),
                          self._opt(rng, 0.3, self.time))

    def _p_animal(self, rng):
        L = self.lists
        base, past = self._c(rng, L.v_animal)
        return self._join(self.subject(rng), past,
                          self.np(rng, L.animals, L.adj_animal),
                          self._opt(rng, 0.6, self.location), self._opt(rng, 0.3, self.time))

    def _p_person(self, rng):
        L = self.lists
        base, past = self._c(rng, L.v_person)
        obj = self.np(rng, L.people, L.adj_mood) if rng.random() < 0.6 else self._c(rng, L.names)
        return self._join(self.subject(rng), past, obj, self._opt(rng, 0.5, self.location),
                          self._opt(rng, 0.4, self.time))

    def _p_intrans(self, rng):
        L = self.lists
        base, past = self._c(rng, L.v_intrans_person)
        return self._join(self.subject(rng), past, self._opt(rng, 0.5, lambda r: self._c(r, L.adverbs)),
                          self.location(rng), self._opt(rng, 0.5, self.time))

    def _p_animal_intrans(self, rng):
        L = self.lists
        base, past = self._c(rng, L.v_intrans_animal)
        return self._join(self.np(rng, L.animals, L.adj_animal, det="the"), past,
                          self.location(rng), self._opt(rng, 0.5, self.time))

    def _p_motion(self, rng):
        L = self.lists
        base, past = self._c(rng, L.v_motion)
        r = rng.random()
        if r < 0.5:
            dest = "to the " + self._c(rng, L.buildings)
        elif r < 0.8:
            dest = "to " + self._c(rng, L.towns)
        else:
            dest = "to the " + self._c(rng, L.nature_places)
        return self._join(self.subject(rng), past, self._opt(rng, 0.3, lambda r: self._c(r, L.adverbs)), dest,
                          self._opt(rng, 0.5, self.time))

    def _p_there_was(self, rng):
        L = self.lists
        noun_list, adj_list = self._c(rng, ((L.objects, L.adj_object), (L.clothing, L.adj_object),
                                            (L.animals, L.adj_animal),
                                            (L.foods, L.adj_taste + L.adj_size)))
        adj = self._c(rng, adj_list)
        noun = self._c(rng, noun_list)
        return self._join("there was", article(adj), adj, noun, self.location(rng),
                          self._opt(rng, 0.4, self.time))

    def _p_want(self, rng):
        L = self.lists
        base, past = self._c(rng, L.v_object)
        verb = self._c(rng, ("wanted to", "tried to", "forgot to", "decided to", "hoped to", "will",
                             "had to", "could not", "did not"))
        return self._join(self.subject(rng), verb, base, self.np(rng, L.objects, L.adj_object),
                          self._opt(rng, 0.5, self.location), self._opt(rng, 0.3, self.time))

    def _p_state(self, rng):
        L = self.lists
        noun = self._c(rng, L.objects + L.clothing + L.vehicles)
        adjs = L.adj_condition + L.adj_color + L.adj_age
        a1 = self._c(rng, adjs)
        pred = a1
        if rng.random() < 0.4:
            a2 = self._c(rng, adjs)
            if a2 != a1:
                pred = f"{a1} and {a2}"
        return self._join(self._c(rng, ("the", "my", "his", "her", "our", "their")), noun,
                          self._opt(rng, 0.5, self.location), self._c(rng, ("was", "looked", "seemed")), pred)

    def _p_count(self, rng):
        L = self.lists
        num = self._c(rng, L.numbers)
        if rng.random() < 0.5:
            base, past = self._c(rng, L.v_intrans_animal)
            return self._join(num, self._opt(rng, 0.5, lambda r: self._c(r, L.adj_size + L.adj_animal_color)),
                              plural(self._c(rng, L.animals)), past, self.location(rng),
                              self._opt(rng, 0.3, self.time))
        base, past = self._c(rng, L.v_food)
        return self._join(self.subject(rng), past, num,
                          self._opt(rng, 0.4, lambda r: self._c(r, L.adj_taste)), plural(self._c(rng, L.foods)),
                          self._opt(rng, 0.4, self.time))

    def _p_give(self, rng):
        L = self.lists
        verb = self._c(rng, ("gave", "sent", "showed", "lent", "handed", "sold", "brought", "offered"))
        noun_list, adj_list = self._c(rng, ((L.objects, L.adj_object), (L.clothing, L.adj_object),
                                            (L.foods, L.adj_taste + L.adj_size)))
        adj = self._c(rng, adj_list)
        return self._join(self.subject(rng), verb, self._c(rng, L.names), article(adj), adj,
                          self._c(rng, noun_list), self._opt(rng, 0.5, self.time))

    def _p_put(self, rng):
        L = self.lists
        verb = self._c(rng, ("put", "left", "placed", "found", "hid", "kept", "dropped"))
        prep = self._c(rng, ("on", "under", "behind", "beside", "near"))
        return self._join(self.subject(rng), verb, self.np(rng, L.objects + L.clothing, L.adj_object, det="the"),
                          prep, "the", self._c(rng, L.furniture), self._opt(rng, 0.4, lambda r: "in the " + self._c(r, L.rooms)))

    def _p_weather(self, rng):
        L = self.lists
        a1, a2 = self._c(rng, L.adj_weather), self._c(rng, L.adj_weather)
        pred = a1 if a1 == a2 or rng.random() < 0.5 else f"{a1} and {a2}"
        where = self._c(rng, ("in " + self._c(rng, L.towns), "by the " + self._c(rng, L.nature_places),
                              "at the " + self._c(rng, L.buildings)))
        when = self._c(rng, ("today", "yesterday", "all week", "this morning", "last weekend", "on monday"))
        return self._join("it was", pred, where, when)

    def _p_vehicle(self, rng):
        L = self.lists
        base, past = self._c(rng, L.v_vehicle)
        if base in ("drive", "steer"):
            where = self._c(rng, ("to " + self._c(rng, L.towns), "to the " + self._c(rng, L.buildings), ""))
        else:
            where = self._c(rng, ("near the " + self._c(rng, L.buildings), "outside the " + self._c(rng, L.buildings),
                                  "in " + self._c(rng, L.towns), ""))
        return self._join(self.subject(rng), past, self.np(rng, L.vehicles, L.adj_size + L.adj_color + L.adj_age),
                          where, self._opt(rng, 0.4, self.time))

    def _p_hobby(self, rng):
        L = self.lists
        if rng.random() < 0.5:
            core = self._join(self._c(rng, ("played", "watched", "loved", "taught", "learned")),
                              self._c(rng, L.sports))
        else:
            core = self._join(self._c(rng, ("played", "practised", "tuned", "cleaned", "carried")), "the",
                              self._c(rng, L.instruments))
        return self._join(self.subject(rng), core, self._opt(rng, 0.5, self.location), self._opt(rng, 0.5, self.time))

    def _p_garden(self, rng):
        L = self.lists
        verb = self._c(rng, ("planted", "watered", "picked", "pruned", "admired", "photographed",
                             "painted", "found", "trimmed", "dug up", "moved", "sold", "bought"))
        where = self._c(rng, ("in the garden", "by the gate", "near the fence", "in a pot", "on the windowsill",
                              "in the greenhouse", "behind the house", "along the path", "at the market", ""))
        return self._join(self.subject(rng), verb, self.np(rng, L.plants, L.adj_plant), where,
                          self._opt(rng, 0.4, self.time))

    def _p_question(self, rng):
        L = self.lists
        base, past = self._c(rng, L.v_object)
        aux = self._c(rng, ("did", "will", "can", "could", "should", "would"))
        subj = self.subject(rng)
        if subj == "i":
            subj = "you"
        return self._join(aux, subj, base, self.np(rng, L.objects, L.adj_object),
                          self._opt(rng, 0.6, self.location)) + "?"

    def _p_time_first(self, rng):
        L = self.lists
        t = self.time(rng)
        inner = self._c(rng, (self._p_food, self._p_animal, self._p_person, self._p_motion, self._p_object))(rng)
        # Drop a trailing time phrase of the inner sentence so the sentence has one time phrase.
        for phrase in sorted(L.time_phrases, key=len, reverse=True):
            if inner.endswith(" " + phrase):
                inner = inner[: -len(phrase) - 1]
                break
        return self._join(t, inner)

    # ---------------------------------------------------------------- public
    def general(self, rng: random.Random) -> Sentence:
        names = [p[0] for p in self._patterns]
        weights = [p[2] for p in self._patterns]
        idx = rng.choices(range(len(names)), weights=weights)[0]
        text = self._patterns[idx][1](rng)
        return Sentence(_tidy(text), f"general:{names[idx]}")

    def pair_sentence(self, rng: random.Random, word: str) -> Sentence:
        tmpl = self._c(rng, TEMPLATES[word])
        return Sentence(_tidy(expand_template(tmpl, rng, self)), f"pair:{word}", word)

    def acceptable(self, sentence: Sentence, min_words: int = 3, max_words: int = 16) -> bool:
        words = transcript(sentence.text).lower().split()
        if not (min_words <= len(words) <= max_words):
            return False
        bare = {w.removesuffix("'s") for w in words}
        if (set(words) | bare) & self.banned:
            return False
        if sentence.focus_word is not None and sentence.focus_word not in set(words) | bare:
            return False
        return True


def _tidy(text: str) -> str:
    text = re.sub(r"\s+", " ", text).strip()
    return text.replace(" ?", "?")


# -------------------------------------------------------------------- templates
_SLOT_RE = re.compile(r"\{([a-z_0-9]+)\}")
_ALT_RE = re.compile(r"\(([^()]*)\)")
_OPT_RE = re.compile(r"\[([^\[\]]*)\]")


def _slot_value(name: str, rng: random.Random, gen: SentenceGenerator, used: dict[str, str]) -> str:
    L = gen.lists
    c = gen._c
    if name == "subj":
        return gen.subject(rng)
    if name in ("name", "name2"):
        while True:
            v = c(rng, L.names)
            if v not in used.values():
                return v
    table = {
        "person": L.people, "animal": L.animals, "food": L.foods, "food_mass": L.foods_mass,
        "drink": L.drinks, "object": L.objects, "furniture": L.furniture, "container": L.containers,
        "clothing": L.clothing, "vehicle": L.vehicles, "room": L.rooms, "building": L.buildings,
        "nature_place": L.nature_places, "town": L.towns, "goods": L.goods, "color": L.adj_color,
        "size": L.adj_size, "taste": L.adj_taste, "mood": L.adj_mood, "adv": L.adverbs,
        "num": L.numbers, "adj": L.adj_object,
    }
    if name == "foods":
        return plural(c(rng, L.foods))
    if name == "time":
        return gen.time(rng)
    if name == "loc":
        return gen.location(rng)
    if name not in table:
        raise KeyError(f"unknown template slot {{{name}}}")
    return c(rng, table[name])


def expand_template(template: str, rng: random.Random, gen: SentenceGenerator) -> str:
    """Expand ``[optional]`` parts, ``(a|b)`` alternatives and ``{slots}``, in that order."""
    question = template.rstrip().endswith("?")
    text = template.rstrip().rstrip("?")
    text = _OPT_RE.sub(lambda m: m.group(1) if rng.random() < 0.5 else "", text)
    text = _ALT_RE.sub(lambda m: _pick_alternative(m.group(1), rng), text)
    used: dict[str, str] = {}

    def fill(m: re.Match) -> str:
        name = m.group(1)
        value = _slot_value(name, rng, gen, used)
        used[name] = value
        return value

    text = _SLOT_RE.sub(fill, text)
    # a/an agreement after slot filling
    text = re.sub(r"\b(a|an) ([a-z']+)", lambda m: article(m.group(2)) + " " + m.group(2), text)
    return text + ("?" if question else "")


def _pick_alternative(body: str, rng: random.Random) -> str:
    options = body.split("|")
    return options[rng.randrange(len(options))]
