"""``mkdocs-aigen batch``: a site's requests through OpenAI's Batch API, or through a
JSONL file any batch runner (``vllm run-batch``) answers, into the same cache a build
reads.

A site completes in rounds: outline expansions, augmentations, polish and review depend
on earlier answers, so each ``submit`` sends exactly the requests whose inputs are all
known now (:mod:`.planner`), and ``collect`` stores the answers (:mod:`.collect`) so the
next round, and finally ``mkdocs build``, find them in the cache. The state file
(:mod:`.state`) makes every step resumable without submitting a request twice.
"""
