"""The cohere Python SDK (pinned 7.0.9 by scripts/test) against the gateway, unmodified except
its base URL: ClientV2.rerank (POST {base}/v2/rerank) and the v1 Client.rerank with documents
returned (POST {base}/v1/rerank). The base URL is the gateway's root, as Cohere's SDKs join it."""

import os
import sys

import cohere

root = os.environ["SWITCHYARD_BASE_URL"].removesuffix("/v1")
key = os.environ["SWITCHYARD_API_KEY"]
documents = [
    "Carson City is the capital city of the American state of Nevada.",
    "The Commonwealth of the Northern Mariana Islands is a group of islands in the Pacific.",
    "Washington, D.C. is the capital of the United States.",
    "Capital punishment has existed in the United States since before it was a country.",
]
query = "What is the capital of the United States?"

v2 = cohere.ClientV2(api_key=key, base_url=root)
ranked = v2.rerank(model="demo-rerank", query=query, documents=documents, top_n=2)
assert len(ranked.results) == 2, ranked
scores = [r.relevance_score for r in ranked.results]
assert scores == sorted(scores, reverse=True), scores
assert all(0 <= r.index < len(documents) for r in ranked.results), ranked
assert ranked.results[0].index == 2, ranked  # the mock scores by the query's words

v1 = cohere.Client(api_key=key, base_url=root)
ranked = v1.rerank(model="demo-rerank", query=query, documents=documents, return_documents=True)
assert len(ranked.results) == len(documents), ranked
assert ranked.results[0].document.text == documents[ranked.results[0].index], ranked

try:
    v2.rerank(model="demo", query=query, documents=documents)
    sys.exit("a chat model must not rerank")
except cohere.core.api_error.ApiError as e:
    assert e.status_code == 400, e

print("all cohere checks passed")
