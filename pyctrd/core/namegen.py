"""Generated container names: adjective_noun, as podman and docker do."""

import random
from collections.abc import Collection

ADJECTIVES = (
    "agile bold brave bright calm clever cosmic crisp eager fancy gentle happy jolly "
    "keen lucid merry nimble noble plucky proud quiet rapid serene sharp snappy "
    "steady sunny swift tender tidy vivid witty zealous"
).split()
NOUNS = (
    "badger beaver bison condor coyote crane dolphin eagle falcon ferret gecko heron "
    "ibex jackal koala lemur lynx marmot narwhal ocelot otter panda puffin quokka "
    "raven salmon tapir toucan urchin walrus wombat yak zebra"
).split()


def generate_name(taken: Collection[str]) -> str:
    rng = random.SystemRandom()
    for attempt in range(200):
        name = f"{rng.choice(ADJECTIVES)}_{rng.choice(NOUNS)}"
        if attempt > 10:
            # Two digits, as podman; past those (the ~99,000 such names can all be
            # taken at 100,000 containers), six.
            name += f"{rng.randrange(10, 100) if attempt < 100 else rng.randrange(10**5, 10**6)}"
        if name not in taken:
            return name
    raise RuntimeError("could not generate a free container name")
