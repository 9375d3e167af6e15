/*
 * strap.S: trap.S's S-mode twin, for traps delegated to S-mode (medeleg).
 *
 * stvec = strap_entry: save the registers, call
 *     strap_handler(scause, sepc, stval, frame)
 * and resume with sret at the address it returns.
 */
#include "trap.h"

    .text
    .balign 4               /* stvec's low two bits select the mode */
    .globl strap_entry
strap_entry:
    SAVE_FRAME
    csrr    a0, scause
    csrr    a1, sepc
    csrr    a2, stval
    mv      a3, sp
    call    strap_handler
    csrw    sepc, a0
    RESTORE_FRAME
    sret
