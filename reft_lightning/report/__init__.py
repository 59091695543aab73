"""``reft report RUN_DIR [RUN_DIR ...]``: a Markdown results page of runs, with a PNG of their curves.

metrics.py reads a run's Lightning CSV log (every ``csv/version_N/metrics.csv``, in version order),
summary.py takes the table's figures from it, plot.py draws the curves, page.py writes the Markdown
and command.py is the command line. Nothing here imports another package of the project, and
importing this package or ``metrics`` loads neither matplotlib nor torch (the bench's drivers read
logs through ``metrics``).
"""
