"""The committed firmware images are exactly what the Makefile builds today."""
import shutil
import subprocess

import oracle
from conftest import needs_cross_compiler


@needs_cross_compiler
def test_committed_images_are_current(tmp_path):
    source = tmp_path / "firmware"
    shutil.copytree(oracle.FIRMWARE, source, ignore=shutil.ignore_patterns("build"))
    subprocess.run(["make", "clean"], cwd=source, check=True, capture_output=True)
    subprocess.run(["make"], cwd=source, check=True, capture_output=True)
    committed = oracle.images()
    assert committed, "no firmware images committed"
    for image in committed:
        rebuilt = source / image.name
        assert rebuilt.exists(), f"the Makefile no longer builds {image.name}"
        assert rebuilt.read_bytes() == image.read_bytes(), \
            f"{image.name} is stale: run `make -C firmware` and commit the result"
    built = {p.name for p in source.glob("*.elf")}
    assert built == {p.name for p in committed}, "built images not committed"
