#include <stdio.h>
#include "greet.h"

int main(void) {
	printf("%s\n", greet());
	return 0;
}
