"""Record every firmware image's QEMU output and exit status in tests/golden/.

    python tests/update_golden.py

Run it after adding or changing firmware, then commit tests/golden/.
"""
import sys

import oracle


def main():
    for image in oracle.qemu_images():
        if not oracle.have_qemu(image):
            sys.exit(f"{oracle.qemu_binary(image)} not found (Debian: qemu-system-misc)")
        output, status = oracle.run_qemu(image)
        oracle.write_golden(image, output, status)
        print(f"{image.name}: exit {status}, {len(output)} bytes")


if __name__ == "__main__":
    main()
