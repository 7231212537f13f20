/*
 * echo-user - includes "echo.thoth.h", the header of the user's own
 * echo.tidl (tests/install/samename): with include/thoth/idl ahead of the
 * user's gen/ on the path it got the system's thoth.echo header instead
 * ("unknown type name 'user_echo_Ping_t'").
 */
#include <stdio.h>

#include "echo.thoth.h"

int main(void)
{
	user_echo_Ping_t p = { .n = 7 };
	printf("echo-user: %u\n", (unsigned)p.n);
	return p.n == 7 ? 0 : 1;
}
