/*
 * assay-intake: the shared service main() over the intake service (intake.h).
 */
#include "intake.h"

int main(int argc, char **argv)
{
	return assay_service_main(argc, argv, &intake_service);
}
