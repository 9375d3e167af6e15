#include "board.h"

/* Called by start.S with main's return value. */
void finish_with(int status)
{
    finish((uint32_t)status);
}
