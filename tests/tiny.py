"""The smoke set at 32 x 16 pixels, with the clustering settings that give the tiny target its clusters there
(k1 10, rho 0.2; a P x K batch of 2 ids): for the tests that run notebooks, jobs or processes, whose subject is a
run's fate (its stages, resume, failures, widgets), not its numbers."""

TINY = {"height": 32, "width": 16, "batch_ids": 2, "k1": 10, "rho": 0.2}


def flags(parameters: dict) -> list[str]:
    """`-p name value` for each parameter, as the command line takes them."""
    return [item for name, value in parameters.items() for item in ("-p", name, str(value))]
