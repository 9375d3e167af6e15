/*
 * trap.S: the M-mode trap entry shared by the images that take traps.
 *
 * mtvec = trap_entry (direct mode): every trap, synchronous or interrupt,
 * lands here.  Save the registers (trap.h), call
 *     trap_handler(mcause, mepc, mtval, frame)
 * and resume with mret at the address it returns.  The frame goes on
 * whatever stack the trapped code was using: fine for these images, where
 * every privilege level shares one stack (a real kernel would switch to
 * its own stack, usually through mscratch).
 */
#include "trap.h"

    .text
    .balign 4               /* mtvec's low two bits select the mode */
    .globl trap_entry
trap_entry:
    SAVE_FRAME
    csrr    a0, mcause
    csrr    a1, mepc
    csrr    a2, mtval
    mv      a3, sp
    call    trap_handler
    csrw    mepc, a0
    RESTORE_FRAME
    mret

/*
 * Vectored mode, mtvec = trap_vectors | 1: exceptions still enter at the
 * base, but interrupt N enters at base + 4 * N.  Each slot is a single
 * jump; slot N's target writes N to mscratch (csrwi needs no register, so
 * nothing is lost) and joins trap_entry.  A handler can read mscratch to
 * see which slot the hart used; slot 0 writes nothing.
 */
    .balign 64
    .globl trap_vectors
trap_vectors:
    j       trap_entry
    .irp n, 1,2,3,4,5,6,7,8,9,10,11,12,13,14,15
    j       vector_\n
    .endr

    .irp n, 1,2,3,4,5,6,7,8,9,10,11,12,13,14,15
vector_\n:
    csrwi   mscratch, \n
    j       trap_entry
    .endr
