import gzip
import json

import pytest

from semhash.corpus import Corpus, CorpusError, bundled_corpora, load_corpus
from semhash.text import strip_newsgroup_boilerplate


def write(path, lines):
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_bundled_corpus_loads_with_splits_and_labels(newsgroups) -> None:
    assert "20newsgroups" in bundled_corpora()
    assert len(newsgroups) == 18846
    assert newsgroups.splits.count("train") == 11314 and newsgroups.splits.count("test") == 7532
    assert len({label for labels in newsgroups.labels for label in labels}) == 20


def test_jsonl_fields_optional_and_extra_fields_ignored(tmp_path) -> None:
    path = write(
        tmp_path / "c.jsonl",
        [
            json.dumps(
                {"id": "a", "text": "hello world", "labels": ["x"], "split": "train", "extra": 1}
            ),
            json.dumps({"text": "no id here", "label": "y"}),
            "",
        ],
    )
    corpus = load_corpus(path)
    assert corpus.ids == ["a", "2"]
    assert corpus.labels == [("x",), ("y",)]
    assert corpus.splits == ["train", ""]


def test_gzipped_jsonl(tmp_path) -> None:
    path = tmp_path / "c.jsonl.gz"
    with gzip.open(path, "wt") as handle:
        handle.write(json.dumps({"id": 1, "text": "zipped"}) + "\n")
    assert load_corpus(path).texts == ["zipped"]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", "line 2: not valid JSON"),
        ("[1, 2]", "line 2: expected a JSON object, got list"),
        ('{"id": "b"}', "line 2: missing field 'text'"),
        ('{"id": "b", "text": 5}', "line 2: field 'text' must be a string"),
        ('{"id": "b", "text": "t", "split": "dev"}', "line 2: field 'split' must be"),
        ('{"id": "b", "text": "t", "labels": {"a": 1}}', "line 2: field 'labels' must be"),
    ],
)
def test_bad_jsonl_line_is_named(tmp_path, line, message) -> None:
    path = write(tmp_path / "bad.jsonl", [json.dumps({"id": "a", "text": "fine"}), line])
    with pytest.raises(CorpusError, match=message):
        load_corpus(path)


def test_empty_corpus_missing_file_and_duplicates(tmp_path) -> None:
    with pytest.raises(CorpusError, match="the corpus is empty"):
        load_corpus(write(tmp_path / "empty.jsonl", [""]))
    with pytest.raises(CorpusError, match="no such file or folder, nor a bundled corpus"):
        load_corpus(tmp_path / "nope.jsonl")
    dup = [json.dumps({"id": "a", "text": "x"}), json.dumps({"id": "a", "text": "y"})]
    with pytest.raises(CorpusError, match="duplicate document id 'a'"):
        load_corpus(write(tmp_path / "dup.jsonl", dup))
    with pytest.raises(CorpusError, match="unknown corpus format"):
        load_corpus(write(tmp_path / "c.tsv", ["a,b"]))


def test_non_utf8_bytes_are_replaced_and_counted(tmp_path, caplog) -> None:
    path = tmp_path / "latin.jsonl"
    path.write_bytes(b'{"id": "a", "text": "caf\xe9 au lait"}\n')
    assert load_corpus(path).texts == ["caf\ufffd au lait"]
    assert "replaced 1 bytes that were not UTF-8" in caplog.text


def test_folder_of_text_files_with_folder_labels(tmp_path) -> None:
    (tmp_path / "space").mkdir()
    (tmp_path / "cars").mkdir()
    (tmp_path / "space" / "a.txt").write_text("rocket launch")
    (tmp_path / "cars" / "b.txt").write_text("engine oil")
    (tmp_path / "top.txt").write_text("no folder")
    (tmp_path / "ignored.md").write_text("not text")
    corpus = load_corpus(tmp_path, labels_from_folders=True)
    assert corpus.ids == ["cars/b.txt", "space/a.txt", "top.txt"]
    assert corpus.labels == [("cars",), ("space",), ()]
    assert load_corpus(tmp_path).labels == [(), (), ()]


def test_held_out_draws_test_documents_by_seed_only_where_no_split(newsgroups) -> None:
    plain = Corpus(
        newsgroups.ids[:500], newsgroups.texts[:500], newsgroups.labels[:500], [""] * 500
    )
    held = plain.held_out(0.2, seed=0)
    assert held.splits.count("test") == 100 and held.splits.count("train") == 400
    assert held.splits == plain.held_out(0.2, seed=0).splits  # the seed decides
    assert held.splits != plain.held_out(0.2, seed=1).splits
    assert (held.ids, held.texts, held.labels) == (plain.ids, plain.texts, plain.labels)
    assert newsgroups.held_out(0.2, seed=0) is newsgroups  # its own split stays
    with pytest.raises(ValueError, match="held-out fraction must be in"):
        plain.held_out(1.0, seed=0)


def test_strip_newsgroup_removes_headers_signature_and_quotes() -> None:
    post = (
        "From: someone@example.com\nSubject: Re: engines\n\n"
        "In article <1@x>, bob@y writes:\n> old quoted text\n"
        "I think the engine is fine.\n--\nSomeone, Example Corp"
    )
    assert strip_newsgroup_boilerplate(post) == "I think the engine is fine."
    # A typed query has no header block: its words stay (they were all dropped before).
    assert strip_newsgroup_boilerplate("nasa space shuttle") == "nasa space shuttle"


@pytest.mark.parametrize("path", ["c", "python"])
def test_own_tokeniser_counts_like_scikit_learn_and_headings_read_the_start(
    newsgroups, path, monkeypatch
) -> None:
    import pickle

    import numpy as np
    from sklearn.feature_extraction.text import CountVectorizer

    from semhash import text as text_module
    from semhash.text import Vectorizer, VectorizerConfig, heading, snippet, title

    if path == "c" and text_module._Table is None:  # noqa: SLF001
        pytest.skip("the C word table (semhash/_tokens.c) is not built here")
    unusual = [
        "",
        "a b",
        "Ünïcode wörds and_under_scores 42 x",
        "İstanbul ÇAĞ STRASSE Straße ǅemal ＡＢＣ x² ½½ ﬁnance ٣٤ ΣΊΣΥΦΟΣ naïve CAFÉ",
        "tab\tnew\nline\x00nul " + "long" * 50,
    ]
    texts = newsgroups.texts[:500] + unusual + ["long" * 100]
    if path == "python":  # as where the C table is not built
        monkeypatch.setattr(text_module, "_learn", None)
    for fitted_on in (newsgroups.texts[:500], unusual * 3 + newsgroups.texts[:50]):
        vectorizer = Vectorizer().fit(fitted_on)
        chosen = CountVectorizer(stop_words="english", max_features=10_000, min_df=3, max_df=0.8)
        assert vectorizer.vocabulary_ == list(chosen.fit(fitted_on).get_feature_names_out())
        few = Vectorizer(VectorizerConfig(max_features=40, min_df=1)).fit(fitted_on)  # ties cut
        chosen = CountVectorizer(stop_words="english", max_features=40, max_df=0.8)
        assert few.vocabulary_ == list(chosen.fit(fitted_on).get_feature_names_out())
        if path == "python":
            vectorizer._table = False  # noqa: SLF001
        columns = {word: i for i, word in enumerate(vectorizer.vocabulary_)}
        expected = CountVectorizer(vocabulary=columns, dtype=np.float32).transform(texts)
        assert (vectorizer.counts(texts) != expected).nnz == 0
        assert (vectorizer.counts(texts[-3:]) != expected[-3:]).nnz == 0
        if path == "c":
            assert vectorizer._table  # noqa: SLF001 - the C table did count
            copied = pickle.loads(pickle.dumps(vectorizer))  # the table is remade, not copied
            assert (copied.counts(texts) != expected).nnz == 0
    for text in texts:
        assert heading(text) == (title(text), snippet(text))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Subject: hi\nFrom: x\n\nthe body", ("hi", "the body")),
        ("\n\nsubject:  Hi  there \nFrom: x\nthe body", ("Hi there", "the body")),
        ("From: x\n  folded\tline\nSUBJECT: late\n\nbody", ("late", "body")),
        ("From: x\nSubject:\n\n\n  first line\nsecond", ("first line", "first line second")),
        ("Subject: one line\nbody", ("Subject: one line", "Subject: one line body")),
        ("From: x\nTo: y", ("", "")),
        ("no headers\nhere", ("no headers", "no headers here")),
        ("", ("", "")),
    ],
)  # fmt: skip
def test_headings_take_the_subject_and_the_start_of_the_body(text, expected) -> None:
    from semhash.text import heading

    assert heading(text) == expected
    long = heading("Subject: " + "word " * 100 + "\nFrom: x\n\n" + "body " * 200)
    assert len(long[0]) == 100 and long[0].endswith("…")
    assert len(long[1]) == 160 and long[1].startswith("body body") and long[1].endswith("…")


def test_csv_with_header_labels_and_extra_columns(tmp_path) -> None:
    path = tmp_path / "c.csv"
    path.write_text(
        'id,text,labels,split,extra\na,"multi\nline text",x;y,train,1\nb,plain,,test,2\n,no id,,,\n'
    )
    corpus = load_corpus(path)
    assert corpus.ids == ["a", "b", "5"]
    assert corpus.texts == ["multi\nline text", "plain", "no id"]
    assert corpus.labels == [("x", "y"), (), ()]
    assert corpus.splits == ["train", "test", ""]


def test_csv_without_text_column_or_with_short_rows(tmp_path) -> None:
    (tmp_path / "a.csv").write_text("id,body\n1,hello\n")
    with pytest.raises(CorpusError, match="line 1: the header has no 'text' column"):
        load_corpus(tmp_path / "a.csv")
    (tmp_path / "b.csv").write_text("id,text\n1,hello\n2\n")
    with pytest.raises(CorpusError, match="line 3: fewer cells than the header names"):
        load_corpus(tmp_path / "b.csv")
