"""Each client's own code as the oracle: what it sends is accepted, what it reads is there and right.

LangChain (``langchain-community``), LlamaIndex (``llama-index-embeddings-jinaai``,
``llama-index-postprocessor-jinaai-rerank``), Haystack (``jina-haystack``) and the OpenAI SDK, pointed at
a live server as a user would: the base-URL option where the client has one, its URL constant where not.
"""

from __future__ import annotations

import httpx
import numpy as np
import pytest

from clients.client_env import KEY, langchain_urls

QUERY = "Wann wurde der Eiffelturm fertiggestellt?"
DOCUMENTS = [
    "Berlin ist die Hauptstadt und größte Stadt Deutschlands.",
    "千と千尋の神隠しは2003年にアカデミー長編アニメ映画賞を受賞した。",
    "La tour Eiffel a été achevée en 1889 pour l'Exposition universelle de Paris.",
    "Mount Berlin is a glacier-covered volcano in Antarctica.",
]
ANSWER = 2
TEXTS = ["Berlin is the capital of Germany.", "La tour Eiffel est à Paris.", '"', "東京は日本の首都です。"]


def server_floats(url: str, **fields) -> np.ndarray:
    body = {"model": "multilingual-e5-small", "input": TEXTS, **fields}
    response = httpx.post(f"{url}/v1/embeddings", json=body, headers={"Authorization": f"Bearer {KEY}"})
    assert response.status_code == 200, response.text
    return np.array([d["embedding"] for d in response.json()["data"]], np.float32)


@pytest.fixture(params=["keyless", "keyed"])
def url(request, servers):
    return servers[request.param]


def test_langchain(url):
    from langchain_community.document_compressors.jina_rerank import JinaRerank
    from langchain_community.embeddings.jina import JinaEmbeddings

    with langchain_urls(f"{url}/v1/rerank", f"{url}/v1/embeddings"):
        ranked = JinaRerank(model="jina-colbert-v2", jina_api_key=KEY, top_n=3).rerank(DOCUMENTS, QUERY)
        vectors = JinaEmbeddings(model_name="multilingual-e5-small", jina_api_key=KEY).embed_documents(TEXTS)
    assert ranked[0]["index"] == ANSWER and len(ranked) == 3
    assert np.array_equal(np.float32(vectors), server_floats(url))  # no task: e5's symmetric "query: "


def test_llamaindex(url):
    from llama_index.core.schema import NodeWithScore, TextNode
    from llama_index.embeddings.jinaai import JinaEmbedding
    from llama_index.postprocessor.jinaai_rerank import JinaRerank

    reranker = JinaRerank(model="jina-colbert-v2", base_url=f"{url}/v1", api_key=KEY, top_n=2)
    nodes = [NodeWithScore(node=TextNode(text=t)) for t in DOCUMENTS]
    ranked = reranker.postprocess_nodes(nodes, query_str=QUERY)
    assert ranked[0].node.text == DOCUMENTS[ANSWER] and len(ranked) == 2
    embed = JinaEmbedding(model="multilingual-e5-small", api_key=KEY, task="retrieval.passage")
    embed._api.api_url = f"{url}/v1/embeddings"  # JinaEmbedding passes no base URL to its caller
    vectors = embed.get_text_embedding_batch(TEXTS)  # sends encoding_type and task
    assert np.array_equal(np.float32(vectors), server_floats(url, task="retrieval.passage"))
    bits = JinaEmbedding(model="multilingual-e5-small", api_key=KEY, encoding_queries="binary")
    bits._api.api_url = f"{url}/v1/embeddings"
    signs = bits.get_query_embedding(TEXTS[0])
    assert np.array_equal(np.array(signs, bool), server_floats(url)[0] > 0)


def test_haystack(url):
    from haystack import Document
    from haystack.utils import Secret
    from haystack_integrations.components.embedders.jina import JinaDocumentEmbedder, JinaTextEmbedder
    from haystack_integrations.components.rankers.jina import JinaRanker

    key = Secret.from_token(KEY)
    documents = [Document(content=t) for t in DOCUMENTS] + [Document(content=None), Document(content="  ")]
    ranker = JinaRanker(model="jina-colbert-v2", api_key=key, base_url=f"{url}/v1/rerank")
    ranked = ranker.run(query=QUERY, documents=documents)["documents"]
    assert ranked[0].content == DOCUMENTS[ANSWER] and len(ranked) == len(documents)
    assert [d.content for d in ranked[-2:]] == [None, "  "]  # content-less documents rank last
    embedder = JinaDocumentEmbedder(
        model="multilingual-e5-small", api_key=key, base_url=f"{url}/v1/embeddings", task="retrieval.passage"
    )
    result = embedder.run(documents=[Document(content=t) for t in TEXTS])
    vectors = [d.embedding for d in result["documents"]]
    assert np.array_equal(np.float32(vectors), server_floats(url, task="retrieval.passage"))
    assert result["meta"]["usage"]["prompt_tokens"] > 0 and result["meta"]["model"] == "multilingual-e5-small"
    text = JinaTextEmbedder(
        model="multilingual-e5-small", api_key=key, base_url=f"{url}/v1/embeddings", task="retrieval.query"
    )
    assert np.array_equal(np.float32(text.run(text=TEXTS[0])["embedding"]), server_floats(url)[0])


def test_openai_sdk(url):
    from openai import OpenAI

    client = OpenAI(base_url=f"{url}/v1", api_key=KEY, max_retries=0)
    default = client.embeddings.create(model="multilingual-e5-small", input=TEXTS)  # sends base64
    floats = client.embeddings.create(model="multilingual-e5-small", input=TEXTS, encoding_format="float")
    expected = server_floats(url)
    assert np.array_equal(np.float32([d.embedding for d in default.data]), expected)
    assert np.array_equal(np.float32([d.embedding for d in floats.data]), expected)
    assert [d.index for d in default.data] == [0, 1, 2, 3] and default.model == "multilingual-e5-small"
    assert default.usage.prompt_tokens == default.usage.total_tokens > 0
    passages = client.embeddings.create(
        model="multilingual-e5-small", input=TEXTS, extra_body={"task": "retrieval.passage"}
    )
    assert np.array_equal(
        np.float32([d.embedding for d in passages.data]), server_floats(url, task="retrieval.passage")
    )
    one = client.embeddings.create(
        model="multilingual-e5-small", input="Berlin", user="user-1", dimensions=384
    )
    assert len(one.data) == 1 and len(one.data[0].embedding) == 384


def test_openai_sdk_reports_a_refusal(servers):
    from openai import BadRequestError, OpenAI

    client = OpenAI(base_url=f"{servers['keyless']}/v1", api_key="any", max_retries=0)
    with pytest.raises(BadRequestError, match="dimensions must be 384"):
        client.embeddings.create(model="multilingual-e5-small", input="x", dimensions=256)
