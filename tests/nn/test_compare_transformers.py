"""compare_models on transformers (simmetrics/nn/compare.py, simmetrics/nn/tokens.py).

Tiny BERT and GPT-2 models are built from configurations (no weights downloaded) in float64,
with tokenizers trained here on a few sentences (the ``tokenizers`` library: a WordPiece and a
byte-level BPE, wrapped in ``PreTrainedTokenizerFast``). Expected values come from routes that
do not go through compare_models' hooks, masks and moments: the models called directly with
``output_hidden_states=True`` on each sentence alone (no padding at all), the rows gathered by
slicing ``[:length]``, and ``fit_score`` on all the rows; the tokenizers' own ``word_ids()``
(their pre-tokenizer's words, equal to the whitespace words for text without punctuation) for
the word pooling; and the identities CKA(X, X) = 1, Procrustes(X, X) = 0.
"""

import dataclasses

import numpy as np
import pytest
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from torch import nn
from torch.utils.data import DataLoader
from transformers import BertConfig, BertModel, GPT2Config, GPT2Model, PreTrainedTokenizerFast

import simmetrics
from simmetrics import LinearCKA
from simmetrics.nn.compare import compare_models
from simmetrics.nn.tokens import hidden_tensor, token_rows, token_words, word_batch

_WORDS = ("the cat dog bird fox sat ran flew jumped on over under near a mat park river bank "
          "quick brown lazy small red tree house").split()


def _sentences(n=36, seed=0):
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(_WORDS, size=int(rng.integers(3, 9)))) for _ in range(n)]


SENTENCES = _sentences()


@pytest.fixture(scope="module")
def wordpiece():
    core = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    core.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    core.train_from_iterator(SENTENCES, trainers.WordPieceTrainer(
        vocab_size=70, special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]"]))
    core.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", core.token_to_id("[CLS]")),
                                                 ("[SEP]", core.token_to_id("[SEP]"))])
    return PreTrainedTokenizerFast(tokenizer_object=core, pad_token="[PAD]", unk_token="[UNK]",
                                   cls_token="[CLS]", sep_token="[SEP]")


@pytest.fixture(scope="module")
def bytelevel():
    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    core.train_from_iterator(SENTENCES, trainers.BpeTrainer(
        vocab_size=290, special_tokens=["<pad>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    return PreTrainedTokenizerFast(tokenizer_object=core, pad_token="<pad>")


def _bert(vocab, seed=0):
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=vocab, hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=4, intermediate_size=64, max_position_embeddings=64)
    return BertModel(config).double().eval()


def _gpt2(vocab, seed=1):
    torch.manual_seed(seed)
    config = GPT2Config(vocab_size=vocab, n_embd=32, n_layer=3, n_head=4, n_positions=64,
                        bos_token_id=0, eos_token_id=0)
    return GPT2Model(config).double().eval()


def _batches(tok, texts, size=7, max_length=None):
    """Right-padded dict batches (the tokenizer's BatchEncoding, a UserDict, not a dict)."""
    options = {"padding": True} if max_length is None else {"padding": "max_length",
                                                            "max_length": max_length}
    return [tok(texts[i:i + size], return_tensors="pt", **options)
            for i in range(0, len(texts), size)]


def _by_hand(model, tok, texts, pool):
    """Every hidden state of every sentence alone (no padding, no mask, no hooks), as rows."""
    per_layer = None
    with torch.no_grad():
        for text in texts:
            enc = tok([text], return_tensors="pt")
            states = model(**enc, output_hidden_states=True).hidden_states
            rows = [pool(s[0]) for s in states]  # s[0]: (length, d), the whole sentence
            per_layer = [[r] for r in rows] if per_layer is None else [
                acc + [r] for acc, r in zip(per_layer, rows)]
    return [torch.cat(chunks).numpy() for chunks in per_layer]


POOLS = {"tokens": lambda h: h, "mean": lambda h: h.mean(0, keepdim=True),
         "cls": lambda h: h[:1], "last": lambda h: h[-1:]}


@pytest.mark.parametrize("tokens", ["tokens", "mean", "cls", "last"])
def test_tiny_bert_and_gpt2_layer_by_layer(wordpiece, tokens):
    bert, gpt = _bert(len(wordpiece)), _gpt2(len(wordpiece))  # one tokenizer: the same tokens
    # BERT's modules against GPT-2's hidden_states (BERT's own hidden_states are the
    # embeddings' and each layer's outputs: the hand route reads those)
    layers_a, layers_b, skip = ["embeddings", "encoder.layer.0", "encoder.layer.1"], \
        "hidden_states", 0
    if tokens == "cls":  # the first token is [CLS] at position 0 in every sentence: BERT's
        # embeddings of it and every causal GPT-2 state of it are constant, so "cls" compares
        # two BERTs from their first layer on
        gpt, layers_a, layers_b, skip = _bert(len(wordpiece), seed=2), layers_a[1:], \
            layers_a[1:], 1
    result = compare_models(bert, gpt, _batches(wordpiece, SENTENCES), layers_a, layers_b,
                            metrics=["linear_cka", "procrustes"], tokens=tokens)
    assert result.layers_a == tuple(layers_a)
    if tokens != "cls":
        assert result.layers_b == tuple(f"hidden_states.{i}" for i in range(4))
    hand_a = _by_hand(bert, wordpiece, SENTENCES, POOLS[tokens])[skip:]
    hand_b = _by_hand(gpt, wordpiece, SENTENCES, POOLS[tokens])[skip:]
    n_tokens = sum(len(wordpiece(s)["input_ids"]) for s in SENTENCES)
    assert result.n_rows == (n_tokens if tokens == "tokens" else len(SENTENCES))
    assert result.n_stimuli == len(SENTENCES)
    for metric in ("linear_cka", "procrustes"):
        expected = [[simmetrics.get_metric(metric).fit_score(A, B) for B in hand_b]
                    for A in hand_a]
        np.testing.assert_allclose(result.values[metric], expected, rtol=1e-10, atol=1e-10)


def test_padding_leaves_every_score_unchanged(wordpiece):
    bert, gpt = _bert(len(wordpiece)), _gpt2(len(wordpiece))
    metrics = ["linear_cka", "procrustes", "rsa"]  # two streamed, one on collected rows
    layers_b = ["h.0", "ln_f", "hidden_states"]
    for tokens in ("tokens", "mean", "cls", "last"):
        # [CLS]'s embeddings and GPT-2's states of it do not vary (see above): "cls" compares
        # two BERTs' layers (not one with itself: Procrustes' arccos near 0 turns rounding
        # into sqrt(eps))
        a, b = (bert, _bert(len(wordpiece), seed=2)) if tokens == "cls" else (bert, gpt)
        layers = (["encoder.layer.0", "encoder.layer.1"],) * 2 if tokens == "cls" else (
            "hidden_states", layers_b)
        tight = compare_models(a, b, _batches(wordpiece, SENTENCES, 12), *layers,
                               metrics=metrics, tokens=tokens)
        padded = compare_models(a, b, _batches(wordpiece, SENTENCES, 9, max_length=40),
                                *layers, metrics=metrics, tokens=tokens)
        assert padded.n_rows == tight.n_rows
        for m in metrics:
            np.testing.assert_allclose(padded.values[m], tight.values[m], rtol=0, atol=1e-12)
        if tokens == "last":
            assert tight.layers_b[:3] == ("h.0", "ln_f", "hidden_states.0")


def test_the_same_model_against_itself(wordpiece):
    bert = _bert(len(wordpiece))
    result = compare_models(bert, bert, _batches(wordpiece, SENTENCES),
                            ["embeddings", "encoder.layer.0", "encoder.layer.1", ""],
                            metrics=["linear_cka", "procrustes"], tokens="tokens")
    np.testing.assert_allclose(np.diag(result.values["linear_cka"]), 1.0, rtol=0, atol=1e-12)
    # arccos(1 - delta) ~ sqrt(2 delta): a rounding delta of 1e-16 is 1.4e-8
    np.testing.assert_allclose(np.diag(result.values["procrustes"]), 0.0, rtol=0, atol=1e-7)
    # the whole model's ModelOutput is read through its last_hidden_state: the last layer's
    assert result.values["linear_cka"][2, 3] == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("tokens", ["tokens", "mean"])
def test_streamed_equals_stored(wordpiece, tokens):
    bert, gpt = _bert(len(wordpiece)), _gpt2(len(wordpiece))
    loader = DataLoader(SENTENCES, batch_size=8, shuffle=True,
                        generator=torch.Generator().manual_seed(0))
    metrics = ["linear_cka", "procrustes"] + (["cca"] if tokens == "tokens" else [])

    def same_inputs(texts):
        enc = wordpiece(list(texts), padding=True, return_tensors="pt")
        return enc, enc

    streamed = compare_models(bert, gpt, loader, "hidden_states", ["h.1", "hidden_states"],
                              metrics=metrics, tokens=tokens, inputs=same_inputs)
    stored = compare_models(bert, gpt, loader, "hidden_states", ["h.1", "hidden_states"],
                            metrics=metrics, tokens=tokens, inputs=same_inputs, streaming=False)
    for m in metrics:
        assert streamed.streamed[m] and not stored.streamed[m]
        np.testing.assert_allclose(streamed.values[m], stored.values[m], rtol=1e-10,
                                   atol=1e-10)


def test_word_pooling_across_two_tokenizers(wordpiece, bytelevel):
    bert, gpt = _bert(len(wordpiece)), _gpt2(len(bytelevel))
    sentence = "the quick cat sat on the mat"
    # hand-computed, by reading the two tokenizations: WordPiece and byte-level BPE split the
    # words differently, and the BPE's offsets include the space before a word
    a = wordpiece([sentence], return_tensors="pt")
    b = bytelevel([sentence], return_tensors="pt")
    n_words = len(sentence.split())
    assert wordpiece.convert_ids_to_tokens(a["input_ids"][0]) != \
        bytelevel.convert_ids_to_tokens(b["input_ids"][0])  # two tokenizations
    groups = []
    for enc, tok in ((a, wordpiece), (b, bytelevel)):
        ids = enc.word_ids(0)  # the tokenizer's own words (no punctuation: the same words)
        groups.append([[k for k, w in enumerate(ids) if w == j] for j in range(n_words)])
    mine_a = word_batch(wordpiece, [sentence])["word_ids"][0].tolist()
    mine_b = word_batch(bytelevel, [sentence])["word_ids"][0].tolist()
    for mine, group in zip((mine_a, mine_b), groups):
        assert [[k for k, w in enumerate(mine) if w == j] for j in range(n_words)] == group
    with torch.no_grad():
        ha = bert(**a, output_hidden_states=True).hidden_states[1][0]
        hb = gpt(**b, output_hidden_states=True).hidden_states[2][0]
    hand = [torch.stack([h[g].sum(0) / len(g) for g in group])
            for h, group in zip((ha, hb), groups)]
    # token_rows on a padded batch gives the same rows for the sentence (the second one here)
    padded = word_batch(wordpiece, ["a cat", sentence], max_length=20, padding="max_length")
    ids = padded.pop("word_ids")
    with torch.no_grad():
        h = bert(**padded, output_hidden_states=True).hidden_states[1]
    rows = token_rows(h, "words", padded["attention_mask"], ids)
    assert rows.shape == (2 + n_words, 32)
    np.testing.assert_allclose(rows[2:].numpy(), hand[0].numpy(), rtol=0, atol=1e-12)

    # compare_models, word by word: the same number of rows for both models
    def both(texts):
        return word_batch(wordpiece, list(texts)), word_batch(bytelevel, list(texts))

    loader = DataLoader(SENTENCES, batch_size=6)
    result = compare_models(bert, gpt, loader, "hidden_states", metrics=["linear_cka"],
                            tokens="words", inputs=both)
    n_all = sum(len(s.split()) for s in SENTENCES)
    assert result.n_rows == n_all
    hand_a = _by_hand(bert, wordpiece, SENTENCES, lambda h: h)  # tokens, then group by hand
    hand_b = _by_hand(gpt, bytelevel, SENTENCES, lambda h: h)

    def words(hand, tok):
        out, start = [], 0
        for text in SENTENCES:
            ids = tok([text]).word_ids(0)
            out.append([np.stack([hand[start + k] for k, w in enumerate(ids) if w == j])
                        .mean(0) for j in range(len(text.split()))])
            start += len(ids)
        return np.concatenate(out)

    words_a = [words(A, wordpiece) for A in hand_a]
    words_b = [words(B, bytelevel) for B in hand_b]
    assert words_a[0].shape == (n_all, 32) and words_b[0].shape == (n_all, 32)
    expected = [[LinearCKA().fit_score(A, B) for B in words_b] for A in words_a]
    np.testing.assert_allclose(result.values["linear_cka"], expected, rtol=1e-10, atol=1e-10)


def test_token_words_rules():
    text = "hi  there, you"
    # [CLS] "hi" " " (whitespace only: the next word) "the" "re," " you" [SEP]
    offsets = [(0, 0), (0, 2), (2, 4), (4, 7), (7, 10), (10, 14), (0, 0)]
    ids, n = token_words(offsets, text)
    assert n == 3 and ids.tolist() == [-1, 0, 1, 1, 1, 2, -1]
    ids, n = token_words(offsets, text, pattern=r"\w+")  # punctuation is then no word
    assert n == 3 and ids.tolist() == [-1, 0, 1, 1, 1, 2, -1]


class _Block(nn.Module):
    """An attention-like block returning (hidden, weights), as older transformers layers do."""

    def __init__(self, d=8):
        super().__init__()
        self.layer = nn.TransformerEncoderLayer(d, 2, 16, dropout=0.0, batch_first=True)

    def forward(self, x):
        h = self.layer(x)
        return h, torch.zeros(x.shape[0], 2, x.shape[1], x.shape[1])


@dataclasses.dataclass
class _Output:  # a ModelOutput-like object: attributes, not a mapping
    last_hidden_state: torch.Tensor
    pooler_output: torch.Tensor


class _Encoder(nn.Module):
    def __init__(self, seed=0):
        super().__init__()
        torch.manual_seed(seed)
        self.embed = nn.Linear(5, 8)
        self.block = _Block()
        self.final = nn.Linear(8, 8)
        self.head = _Head()

    def forward(self, x):
        h = self.final(self.block(self.embed(x))[0])
        return self.head(h)


class _Head(nn.Module):
    def forward(self, h):
        return _Output(h, h.mean(1))


class _MapHead(nn.Module):
    def forward(self, h):
        return {"hidden_states": (h * 0, h), "logits": h}


def test_tuples_and_model_outputs_are_unpacked():
    enc = _Encoder().double().eval()
    x = torch.randn(30, 6, 5, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    result = compare_models(enc, enc, torch.split(x, 8), ["block", "final", "head"],
                            tokens="tokens")
    with torch.no_grad():
        block = enc.block(enc.embed(x))[0]
        final = enc.final(block)
    M = result.values["linear_cka"]
    cka = LinearCKA()
    assert M[0, 1] == pytest.approx(cka.fit_score(block.reshape(-1, 8).numpy(),
                                                  final.reshape(-1, 8).numpy()), rel=1e-10)
    assert M[1, 2] == pytest.approx(1.0, abs=1e-12)  # head's last_hidden_state is final's
    assert hidden_tensor({"hidden_states": (x * 0, x)}) is x
    enc.head = _MapHead()
    again = compare_models(enc, enc, torch.split(x, 8), ["final", "head"], tokens="mean")
    assert again.values["linear_cka"][0, 1] == pytest.approx(1.0, abs=1e-12)

    class _Nothing(nn.Module):
        def forward(self, h):
            return {"logits": None}

    enc.head = _Nothing()
    with pytest.raises(TypeError, match=r"model_a: module 'head' returned a dict in which no "
                                        r"tensor was found.*keys \['logits'\]"):
        compare_models(enc, enc, torch.split(x, 8), ["final", "head"], tokens="mean")
    with pytest.raises(TypeError, match="layers 'hidden_states': the model does not take "
                                        "output_hidden_states=True.*HuggingFace"):
        compare_models(enc, enc, torch.split(x, 8), "hidden_states", tokens="mean")

    class _NoStates(nn.Module):  # takes the option, returns no hidden states
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(5, 4).double()

        def forward(self, x, output_hidden_states=False):
            return self.fc(x)

    with pytest.raises(TypeError, match="model_b: layers 'hidden_states'.*no tuple of tensors"):
        compare_models(enc, _NoStates(), torch.split(x, 8), "block", "hidden_states",
                       tokens="mean")


def test_dict_batches_and_token_errors(wordpiece, bytelevel):
    bert, gpt = _bert(len(wordpiece)), _gpt2(len(bytelevel))
    batches = _batches(wordpiece, SENTENCES[:14])
    assert not isinstance(batches[0], dict)  # a BatchEncoding: a mapping, moved item by item
    as_dicts = [dict(b) for b in batches]
    r1 = compare_models(bert, bert, batches, "encoder.layer.0", tokens="mean")
    r2 = compare_models(bert, bert, as_dicts, "encoder.layer.0", tokens="mean", device="cpu")
    np.testing.assert_allclose(r1.values["linear_cka"], r2.values["linear_cka"], rtol=0,
                               atol=1e-12)
    with pytest.raises(ValueError, match=r"the batch has an attention_mask.*tokens="):
        compare_models(bert, bert, batches, "encoder.layer.0")
    with pytest.raises(ValueError, match="tokens must be one of"):
        compare_models(bert, bert, batches, "encoder.layer.0", tokens="first")
    with pytest.raises(ValueError, match="features and pool_size apply to"):
        compare_models(bert, bert, batches, "encoder.layer.0", tokens="mean", features="pool")
    with pytest.raises(TypeError, match="inputs must be a callable"):
        compare_models(bert, bert, batches, "encoder.layer.0", tokens="mean", inputs=3)

    def both(texts):
        return (wordpiece(list(texts), padding=True, return_tensors="pt"),
                bytelevel(list(texts), padding=True, return_tensors="pt"))

    loader = DataLoader(SENTENCES[:12], batch_size=6)
    with pytest.raises(ValueError, match=r"different tokens.*tokens='mean'.*tokens='words'"):
        compare_models(bert, gpt, loader, "hidden_states", tokens="tokens", inputs=both)
    pooled = compare_models(bert, gpt, loader, "hidden_states", tokens="last", inputs=both)
    assert pooled.n_rows == 12
    with pytest.raises(ValueError, match="tokens='words' needs the batch's 'word_ids'"):
        compare_models(bert, gpt, loader, "hidden_states", tokens="words", inputs=both)
    with pytest.raises(ValueError, match=r"texts\[0\]: the word .* has no token"):
        word_batch(wordpiece, [SENTENCES[0]], truncation=True, max_length=3)
    with pytest.raises(TypeError, match="texts must be a list of str"):
        word_batch(wordpiece, "one text")


# -- extract_activations / extract_pair on transformers ------------------------------------------
def test_extract_activations_reads_block_outputs_and_dict_batches(wordpiece):
    # expected: the model's own hidden_states (output_hidden_states=True, no hooks), run on the
    # same batch; a BertLayer returns a tuple, whose first item is the block's hidden states
    from simmetrics.nn.extract import extract_activations, extract_pair

    bert = _bert(len(wordpiece))
    lengths = [len(wordpiece(t)["input_ids"]) for t in SENTENCES]
    common = max(set(lengths), key=lengths.count)
    texts = [t for t, n in zip(SENTENCES, lengths) if n == common]  # equal lengths: no padding
    assert len(texts) >= 3
    batch = wordpiece(texts, return_tensors="pt", padding=True)
    assert bool((batch["attention_mask"] == 1).all())
    acts = extract_activations(bert, [batch], ["encoder.layer.0", "encoder.layer.1"],
                               dtype=np.float64)
    with torch.no_grad():
        states = bert(**batch, output_hidden_states=True).hidden_states
    for j, name in ((1, "encoder.layer.0"), (2, "encoder.layer.1")):
        np.testing.assert_allclose(acts[name], states[j].numpy(), rtol=0, atol=1e-12)
    pair_a, pair_b = extract_pair(bert, _bert(len(wordpiece), seed=3), [batch],
                                  "encoder.layer.1", dtype=np.float64)
    assert pair_a["encoder.layer.1"].shape == pair_b["encoder.layer.1"].shape == states[2].shape


def test_extract_activations_refuses_padding_it_would_count_as_stimuli(wordpiece):
    from simmetrics.nn.extract import extract_activations

    padded = wordpiece(SENTENCES[:7], return_tensors="pt", padding="max_length", max_length=40)
    with pytest.raises(ValueError, match=r"data: batch 0 has padding .*compare_models"):
        extract_activations(_bert(len(wordpiece)), [padded], "encoder.layer.0")
