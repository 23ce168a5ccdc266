"""The pipeline floor: every stage in order (:mod:`~refusal_tl.pipeline.reproduce`), the held-out
evaluations behind the report and the notebooks (:mod:`~refusal_tl.pipeline.suite`, cached in
``RUN/eval``), their figures (:mod:`~refusal_tl.pipeline.figures`) and ``report.html``
(:mod:`~refusal_tl.pipeline.report`). It imports every stage; no stage imports it.
"""
