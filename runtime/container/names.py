"""Random container names in the style of Docker's namesgenerator: ``adjective_surname``."""

from __future__ import annotations

import os

from imagefmt.records import TYPE_CHECKING

if TYPE_CHECKING:
    from runtime.container.store import ContainerStore

LEFT = (
    "admiring adoring affectionate agitated amazing angry awesome beautiful blissful bold boring brave busy "
    "charming clever cool compassionate competent condescending confident cranky crazy dazzling determined "
    "distracted dreamy eager ecstatic elastic elated elegant eloquent epic exciting fervent festive "
    "flamboyant focused friendly frosty funny gallant gifted goofy gracious great happy hardcore "
    "heuristic hopeful hungry "
    "infallible inspiring intelligent interesting jolly jovial keen kind laughing loving lucid magical "
    "modest musing mystifying naughty nervous nice nifty nostalgic objective optimistic peaceful pedantic "
    "pensive practical priceless quirky quizzical recursing relaxed reverent romantic sad serene sharp silly "
    "sleepy stoic strange stupefied suspicious sweet tender thirsty trusting unruffled upbeat vibrant "
    "vigilant vigorous wizardly wonderful xenodochial youthful zealous zen"
).split()
RIGHT = (
    "albattani allen almeida archimedes ardinghelli aryabhata austin babbage banach bardeen bartik bassi "
    "bell benz bhabha bhaskara blackwell bohr booth borg bose boyd brahmagupta brattain brown carson cerf "
    "chandrasekhar chaplygin chatelet chebyshev cohen curie darwin davinci dijkstra dirac driscoll dubinsky "
    "easley einstein elion engelbart euclid euler faraday fermat fermi feynman franklin galileo gates "
    "goldberg goldstine goldwasser golick goodall hamilton hawking heisenberg hermann hodgkin hoover hopper "
    "hugle hypatia jackson jang jennings jepsen johnson joliot jones kalam kapitsa keller kepler khorana "
    "kilby kirch knuth kowalevski lalande lamarr lamport leakey leavitt lewin lichterman liskov lovelace "
    "lumiere mahavira margulis matsumoto maxwell mayer mccarthy mcclintock mclean mcnulty meitner mendel "
    "mendeleev merkle mirzakhani montalcini moore morse murdock napier nash neumann newton nightingale "
    "nobel noether northcutt noyce panini pare pascal pasteur payne perlman pike poincare poitras ptolemy "
    "raman ramanujan ride ritchie robinson roentgen rosalind rubin saha sammet sanderson satoshi shamir "
    "shannon shaw shirley shockley sinoussi snyder solomon spence stonebraker sutherland swanson swartz "
    "swirles taussig tesla tharp thompson torvalds tu turing varahamihira visvesvaraya volhard wescoff "
    "wiles williams wilson wing wozniak wright wu yalow yonath zhukovsky"
).split()


def generate() -> str:
    """A random ``adjective_surname``; never boring_wozniak, as in Docker."""
    while (name := f"{_pick(LEFT)}_{_pick(RIGHT)}") == "boring_wozniak":
        pass
    return name


def _pick(words: list[str]) -> str:
    """A random word (os.urandom: the random module costs a millisecond to import)."""
    return words[int.from_bytes(os.urandom(4), "little") % len(words)]


def random_name(store: ContainerStore) -> str:
    """A name no container of ``store`` has (docker's retries, then a random suffix)."""
    for _ in range(20):
        name = generate()
        if not os.path.lexists(store.names / name):
            return name
    return generate() + f"_{os.urandom(2).hex()}"
