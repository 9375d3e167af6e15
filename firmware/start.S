/*
 * start.S: reset entry shared by every image.
 * QEMU's `virt` (with -bios none) and minivm both jump here in M-mode with
 * a0 = hart id.  Set up the stack, clear .bss, run main(), and report
 * main's return value through the finisher.
 */
    .section .text.start
    .globl _start
_start:
    la      sp, __stack_top
    la      t0, __bss_start
    la      t1, __bss_end
1:  bgeu    t0, t1, 2f
    sb      zero, 0(t0)
    addi    t0, t0, 1
    j       1b
2:  call    main
    call    finish_with
3:  j       3b
