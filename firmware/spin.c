/*
 * spin: a runaway guest.  Says so, then loops forever without touching a
 * device: only an instruction budget (--max-insns) or Ctrl-C ends it.
 */
#include "board.h"
#include "lib.h"

int main(void)
{
    puts("spinning forever\n");
    for (;;)
        __asm__ volatile("");
}
