/* Unit tests of the engine: placeholder until the suites land. */
#include <check.h>
#include <stdlib.h>
int main(void) { return EXIT_SUCCESS; }
