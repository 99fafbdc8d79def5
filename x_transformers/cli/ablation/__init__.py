"""``xtransformers ablate``: train a base configuration and its one-keyword variants on the same
data, budget and schedule, over several seeds, and report what each technique changes.

    suite.py          the suite file format: a ``train`` config plus ``[suite]`` and
                      ``[variants.NAME]`` tables
    runner.py         one training run per (variant, seed); finished runs are skipped, partly
                      finished ones resume from their last checkpoint
    extrapolation.py  bits per byte per position at 1x, 2x, 4x the training context
    stats.py          mean, standard deviation, paired differences and their significance
    report.py         the Markdown tables
    plots.py          validation curves, a bar chart of the differences, loss against position
    command.py        the command line

See docs/cli.md (section "ablate") and docs/ablations.md for a real run.
"""
