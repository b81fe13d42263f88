"""The lecture-claims suite: each claim of the lecture notes run as an experiment with a verdict.

``conf/claims/<name>.yaml`` states the claim, its lecture, the runs that test it (``base`` overrides shared by
``variants``, each trained for every one of ``seeds``) and ``checks``: a statistic (dlzoo.claims.expr) with an
expectation. ``python -m dlzoo.claims NAME`` trains the runs as children of one MLflow parent run
(``claim-<name>``, tagged with the verdict), writes ``metrics-claims/<name>.json``; the report's claims section
(``reports/claims.md``) shows every verdict with its numbers and seeds. ``make claims`` runs them all through
DVC (``claims/dvc.yaml``).
"""
