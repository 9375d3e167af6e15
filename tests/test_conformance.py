"""minivm against QEMU `virt`: same firmware, same UART bytes, same exit status."""
import pytest

import oracle
from conftest import needs_qemu
from minivm.cpu import ExitReason
from minivm.machine import Machine

IMAGES = oracle.qemu_images()


@pytest.mark.parametrize("image", IMAGES, ids=lambda p: p.stem)
def test_minivm_matches_golden(image):
    expected_output, expected_status = oracle.golden(image)
    typed = oracle.golden_input(image)
    if expected_status == "runaway":
        # QEMU runs it until killed; minivm stops it at a budget, or sees
        # that it waits for an interrupt nothing can send.
        result = Machine(image, max_insns=1_000_000, input=typed).run()
        assert result.reason is ExitReason.LIMIT or \
            result.message.startswith("guest halted (wfi) with nothing that could wake it")
    else:
        result = Machine(image, input=typed).run()
        assert result.exit_code == expected_status, result.message
    assert result.output == expected_output


@needs_qemu
@pytest.mark.parametrize("image", IMAGES, ids=lambda p: p.stem)
def test_golden_files_are_current(image):
    # The golden files are what QEMU prints today; regenerate them with
    # tests/update_golden.py if this fails after a firmware change.
    assert oracle.run_qemu(image) == oracle.golden(image)


def test_every_image_has_golden_files():
    for image in IMAGES:
        assert (oracle.GOLDEN / f"{image.stem}.out").exists(), image.name
