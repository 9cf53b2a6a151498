/*
 * assay-risk: coverage and residual risk per control, standard and audit (risk.h).
 *
 *	assay-risk [-c FILE] [--config-doc]
 */
#include "risk.h"

int main(int argc, char **argv)
{
	return assay_service_main(argc, argv, &risk_service);
}
