"""``python -m alignlib.ssm.kernels``: build every kernel into the cache now (``make`` runs it once)."""
from alignlib.common import threads
from alignlib.ssm.kernels import SOURCES, load

threads.configure()  # before the build loads torch

for source in sorted(SOURCES.glob("*.cpp")):
    library = load(source.stem)
    print(f"alignlib kernel {source.stem}: {library._name if library else 'unavailable (pure-PyTorch fallback)'}")
