/*
 * trap.h: the trap frame shared by trap.S (M-mode entry, mret), strap.S
 * (S-mode entry, sret) and the C handlers they call.
 *
 * An entry saves all 31 integer registers on the interrupted code's stack
 * (frame->x[n] is register xn; x[2] is sp as it was before the trap),
 * calls the handler with (cause, epc, tval, frame), writes the handler's
 * return value to mepc/sepc, restores every register but sp from the
 * frame and returns.  A handler may change frame->x[n] to change what the
 * interrupted code sees, and returns the address to resume at.
 */
#ifndef TRAP_H
#define TRAP_H

#if __riscv_xlen == 64
#define REGBYTES 8
#else
#define REGBYTES 4
#endif
#define FRAME_SIZE (32 * REGBYTES)     /* a multiple of 16, as sp must stay */

/* Register numbers, for frame->x[]. */
#define REG_RA 1
#define REG_SP 2
#define REG_A0 10

#ifdef __ASSEMBLER__
#if __riscv_xlen == 64
#define STORE sd
#define LOAD  ld
#else
#define STORE sw
#define LOAD  lw
#endif

/* Push a frame: x1 and x3..x31 go to x[n], the old sp to x[2]. */
.macro SAVE_FRAME
    addi    sp, sp, -FRAME_SIZE
    .irp n, 1,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
    STORE   x\n, \n * REGBYTES(sp)
    .endr
    addi    t0, sp, FRAME_SIZE
    STORE   t0, REG_SP * REGBYTES(sp)
.endm

/* Pop it again: every register but sp comes back from the frame. */
.macro RESTORE_FRAME
    .irp n, 1,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
    LOAD    x\n, \n * REGBYTES(sp)
    .endr
    addi    sp, sp, FRAME_SIZE
.endm

#else
#include <stdint.h>

struct trap_frame {
    uintptr_t x[32];
};

/* Defined by each image that links trap.S (and strap.S). */
uintptr_t trap_handler(uintptr_t mcause, uintptr_t mepc, uintptr_t mtval,
                       struct trap_frame *frame);
uintptr_t strap_handler(uintptr_t scause, uintptr_t sepc, uintptr_t stval,
                        struct trap_frame *frame);

/* The entry points, for mtvec and stvec. */
extern char trap_entry[];       /* direct mode */
extern char trap_vectors[];     /* vectored mode: mtvec = trap_vectors | 1 */
extern char strap_entry[];
#endif

#endif
