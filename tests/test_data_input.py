"""Dataset reading, the validation split, and each augmentation eagerly and inside tf.data."""

import gzip

import numpy as np
import pytest
import tensorflow as tf

import data_input
from conftest import make_dataset, write_idx
from fmnist_app import dataset

PROB = 0.3
BATCH = 4000


# --------------------------------------------------------------------------- reading

def test_reads_gzip_and_raw_files_identically(tmp_path):
    gz = make_dataset(tmp_path / "gz", compress=True)
    raw = make_dataset(tmp_path / "raw", compress=False)
    images_gz, labels_gz = dataset.load_split("train", gz)
    images_raw, labels_raw = dataset.load_split("train", raw)
    assert images_gz.shape == (600, 28, 28) and images_gz.dtype == np.uint8
    np.testing.assert_array_equal(images_gz, images_raw)
    np.testing.assert_array_equal(labels_gz, labels_raw)
    assert np.bincount(labels_gz).tolist() == [60] * 10


def test_data_dir_order_argument_then_env_then_default(tmp_path, monkeypatch):
    env_dir = make_dataset(tmp_path / "env")
    arg_dir = make_dataset(tmp_path / "arg", train_per_class=5)
    monkeypatch.setenv(dataset.DATA_DIR_ENV, str(env_dir))
    assert dataset.find_data_dir(arg_dir) == arg_dir
    assert dataset.find_data_dir() == env_dir
    monkeypatch.delenv(dataset.DATA_DIR_ENV)
    assert str(dataset.find_data_dir()) == dataset.DEFAULT_DATA_DIR


def test_missing_dataset_names_the_debian_package(tmp_path):
    with pytest.raises(dataset.DatasetError, match="apt-get install dataset-fashion-mnist"):
        dataset.load_split("train", tmp_path / "nowhere")


def test_missing_file_is_named(tmp_path):
    folder = make_dataset(tmp_path)
    (folder / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(dataset.DatasetError, match="t10k-labels-idx1-ubyte"):
        dataset.load_split("test", folder)


def _corrupt(folder, name, data):
    with gzip.open(folder / name, "wb") as f:
        f.write(data)


@pytest.mark.parametrize("case, pattern", [
    ("wrong_magic", "wrong magic number 2049, expected 2051"),
    ("truncated", "truncated"),
    ("count_mismatch", "600 images but .* has 590 labels"),
    ("label_10", "label 10 at index 3 is outside 0..9"),
    ("not_28x28", "expected 28x28"),
])
def test_corrupt_idx_gives_clear_error(tmp_path, case, pattern):
    folder = make_dataset(tmp_path)
    images, labels = dataset.load_split("train", folder)
    if case == "wrong_magic":
        write_idx(folder / "train-images-idx3-ubyte.gz", images, 2049)
    elif case == "truncated":
        with gzip.open(folder / "train-images-idx3-ubyte.gz", "rb") as f:
            raw = f.read()
        _corrupt(folder, "train-images-idx3-ubyte.gz", raw[:-100])
    elif case == "count_mismatch":
        write_idx(folder / "train-labels-idx1-ubyte.gz", labels[:590], 2049)
    elif case == "label_10":
        bad = labels.copy()
        bad[3] = 10
        write_idx(folder / "train-labels-idx1-ubyte.gz", bad, 2049)
    elif case == "not_28x28":
        write_idx(folder / "train-images-idx3-ubyte.gz", images[:, :27, :], 2051)
    with pytest.raises(dataset.DatasetError, match=pattern) as err:
        dataset.load_split("train", folder)
    assert "\n" not in str(err.value)


def test_real_dataset_when_installed():
    try:
        images, labels = dataset.load_split("test")
    except dataset.DatasetError:
        pytest.skip("Debian dataset-fashion-mnist not installed")
    assert images.shape == (10000, 28, 28)
    assert np.bincount(labels).tolist() == [1000] * 10


# --------------------------------------------------------------------------- split

def test_split_is_stratified_disjoint_and_reproducible():
    labels = np.repeat(np.arange(10), 600)
    train, val = dataset.stratified_split(labels, 4000, seed=7)
    assert np.bincount(labels[val]).tolist() == [400] * 10
    assert not set(train) & set(val)
    assert len(train) + len(val) == len(labels)
    again_train, again_val = dataset.stratified_split(labels, 4000, seed=7)
    np.testing.assert_array_equal(val, again_val)
    np.testing.assert_array_equal(train, again_train)
    _, other_val = dataset.stratified_split(labels, 4000, seed=8)
    assert not np.array_equal(val, other_val)


def test_split_of_zero_keeps_every_image_for_training():
    train, val = dataset.stratified_split(np.repeat(np.arange(10), 5), 0, seed=0)
    assert len(val) == 0 and len(train) == 50


# --------------------------------------------------------------------------- augmentation

def random_batch(seed=0, labels=None):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (BATCH, 28, 28, 1)).astype(np.float32)
    if labels is None:
        labels = rng.integers(0, 10, BATCH)
    return tf.constant(images), tf.constant(labels, tf.int32)


AUGMENTATIONS = {
    "add_noise": lambda x, y, p: data_input.add_noise(x, p),
    "adjust_brightness": lambda x, y, p: data_input.adjust_brightness(x, p),
    "horizontal_flip": lambda x, y, p: data_input.horizontal_flip(x, y, p),
    "erase_patch": lambda x, y, p: data_input.erase_patch(x, p),
    "crop": lambda x, y, p: data_input.crop(x, p),
    "augment_batch": lambda x, y, p: data_input.augment_batch(x, y, p),
}


def run_both_ways(name, images, labels, prob):
    """The augmentation applied eagerly and as a tf.data map after batching."""
    fn = AUGMENTATIONS[name]
    eager = fn(images, labels, prob).numpy()
    ds = tf.data.Dataset.from_tensors((images, labels)).map(
        lambda x, y: fn(x, y, prob), num_parallel_calls=tf.data.AUTOTUNE)
    in_pipeline = next(iter(ds)).numpy()
    return eager, in_pipeline


@pytest.mark.parametrize("name", list(AUGMENTATIONS))
def test_augmentation_keeps_shape_dtype_and_range(name):
    images, labels = random_batch()
    for out in run_both_ways(name, images, labels, PROB):
        assert out.shape == images.shape and out.dtype == np.float32
        assert out.min() >= 0 and out.max() <= 255


@pytest.mark.parametrize("name, expected", [
    ("add_noise", PROB), ("adjust_brightness", PROB),
    # flip only touches the 7 flippable classes; labels below avoid 5, 7, 9
    ("horizontal_flip", PROB), ("erase_patch", PROB),
    # the crop window can land on the centre by chance: 1 of 81 offsets
    ("crop", PROB * 80 / 81),
])
def test_application_rate_matches_augment_prob(name, expected):
    flippable = np.array([0, 1, 2, 3, 4, 6, 8])
    images, labels = random_batch(1, labels=flippable[np.arange(BATCH) % 7])
    for out in run_both_ways(name, images, labels, PROB):
        changed = np.any(out != images.numpy(), axis=(1, 2, 3)).mean()
        assert abs(changed - expected) < 0.035, f"{name}: changed {changed:.3f}"


def test_probability_zero_and_one():
    images, labels = random_batch(2, labels=np.zeros(BATCH, int))
    for name in ("add_noise", "adjust_brightness", "horizontal_flip", "erase_patch"):
        untouched, _ = run_both_ways(name, images, labels, 0.0)
        np.testing.assert_array_equal(untouched, images.numpy())
        always, _ = run_both_ways(name, images, labels, 1.0)
        assert np.all(np.any(always != images.numpy(), axis=(1, 2, 3))), name


def test_unchanged_fraction_of_full_pipeline_is_one_minus_p_to_the_fifth():
    flippable = np.array([0, 1, 2, 3, 4, 6, 8])
    images, labels = random_batch(3, labels=flippable[np.arange(BATCH) % 7])
    eager, in_pipeline = run_both_ways("augment_batch", images, labels, PROB)
    for out in (eager, in_pipeline):
        unchanged = np.all(out == images.numpy(), axis=(1, 2, 3)).mean()
        # crop's centre window counts as unchanged, hence the small correction
        expected = (1 - PROB) ** 4 * (1 - PROB * 80 / 81)
        assert abs(unchanged - expected) < 0.03


def test_footwear_is_never_flipped():
    labels = np.tile([5, 7, 9], BATCH // 3 + 1)[:BATCH]
    images, labels = random_batch(4, labels=labels)
    for out in run_both_ways("horizontal_flip", images, labels, 1.0):
        np.testing.assert_array_equal(out, images.numpy())


def test_flip_footwear_mirrors_shoes_too():
    labels = np.tile([5, 7, 9], BATCH // 3 + 1)[:BATCH]
    images, labels = random_batch(4, labels=labels)
    out = data_input.horizontal_flip(images, labels, 1.0, flip_footwear=True).numpy()
    np.testing.assert_array_equal(out, images.numpy()[:, :, ::-1, :])


def test_rotation_turns_a_bar_and_keeps_range():
    images = np.zeros((2, 28, 28, 1), np.float32)
    images[:, 4:24, 13:15] = 255.0                      # an upright bar through the centre
    tf.random.set_seed(0)
    out = data_input.rotate(tf.constant(images), 1.0, 30.0).numpy()
    assert out.min() >= 0 and out.max() <= 255
    assert np.allclose(out.sum(axis=(1, 2, 3)), images.sum(axis=(1, 2, 3)), rtol=0.1)
    # A turned bar leaves the upright columns: the top rows shift sideways.
    assert not np.allclose(out[:, 4:8], images[:, 4:8], atol=10)
    unchanged = data_input.rotate(tf.constant(images), 0.0, 30.0).numpy()
    np.testing.assert_allclose(unchanged, images, atol=1e-3)


def test_flip_mirrors_left_right():
    images, labels = random_batch(5, labels=np.zeros(BATCH, int))
    out, _ = run_both_ways("horizontal_flip", images, labels, 1.0)
    np.testing.assert_array_equal(out, images.numpy()[:, :, ::-1, :])


def test_erased_region_is_one_rectangle_of_allowed_size():
    images, labels = random_batch(6)
    out, in_pipeline = run_both_ways("erase_patch", images, labels, 1.0)
    for result in (out, in_pipeline):
        for before, after in zip(images.numpy()[:300, ..., 0], result[:300, ..., 0]):
            rows, cols = np.nonzero(before != after)
            top, bottom, left, right = rows.min(), rows.max(), cols.min(), cols.max()
            height, width = bottom - top + 1, right - left + 1
            # noise fill leaves every pixel of the rectangle changed, none outside
            assert len(rows) == height * width
            # rounding height and width to whole pixels can stretch the area slightly
            assert 0.01 <= height * width / 784 <= 0.30
            assert 1 / 3.3 / 2 <= height / width <= 3.3 * 2


def test_crop_is_a_window_of_the_padded_image():
    images, labels = random_batch(7)
    for out in run_both_ways("crop", images, labels, 1.0):
        padded = np.pad(images.numpy()[:200], [(0, 0), (4, 4), (4, 4), (0, 0)])
        for source, result in zip(padded, out[:200]):
            assert any(np.array_equal(source[dy:dy + 28, dx:dx + 28], result)
                       for dy in range(9) for dx in range(9))


def test_shifts_only_is_pad_and_crop_alone():
    flippable = np.array([0, 1, 2, 3, 4, 6, 8])
    images, labels = random_batch(8, labels=flippable[np.arange(BATCH) % 7])
    out = data_input.augment_batch(images, labels, 1.0, shifts_only=True).numpy()
    padded = np.pad(images.numpy()[:200], [(0, 0), (4, 4), (4, 4), (0, 0)])
    for source, result in zip(padded, out[:200]):     # no noise, flip, erasing or brightness
        assert any(np.array_equal(source[dy:dy + 28, dx:dx + 28], result)
                   for dy in range(9) for dx in range(9))
    some = data_input.augment_batch(images, labels, PROB, shifts_only=True).numpy()
    changed = np.any(some != images.numpy(), axis=(1, 2, 3)).mean()
    assert abs(changed - PROB * 80 / 81) < 0.035


def test_train_dataset_yields_augmented_batches(fake_data_dir):
    images, labels = dataset.load_split("train", fake_data_dir)
    ds = data_input.train_dataset(images, labels, batch_size=32, augment_prob=PROB, seed=0)
    batch_images, batch_labels = next(iter(ds))
    assert batch_images.shape == (32, 28, 28, 1) and batch_images.dtype == tf.float32
    assert batch_labels.shape == (32,) and batch_labels.dtype == tf.int32
    assert float(tf.reduce_min(batch_images)) >= 0 and float(tf.reduce_max(batch_images)) <= 255


# --------------------------------------------------------------------------- download

@pytest.fixture
def file_server(tmp_path):
    """A local HTTP server on 127.0.0.1 serving tmp_path/served; yields its base URL."""
    import functools
    import http.server
    import threading
    served = tmp_path / "served"
    served.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield served, f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()


def serve_the_real_files(served):
    real = dataset.find_data_dir()
    for stem in dataset.CONTENT_SHA256:
        (served / (stem + ".gz")).write_bytes((real / (stem + ".gz")).read_bytes())


def test_download_fetches_checks_and_keeps_the_four_files(file_server, tmp_path):
    served, url = file_server
    serve_the_real_files(served)
    target = tmp_path / "fresh"
    dataset.download(target, url)
    images, labels = dataset.load_split("test", target)
    assert images.shape == (10000, 28, 28) and len(labels) == 10000
    assert not list(target.glob("*.tmp"))


def test_download_refuses_a_truncated_file_and_writes_nothing(file_server, tmp_path):
    served, url = file_server
    serve_the_real_files(served)
    name = served / "t10k-labels-idx1-ubyte.gz"
    name.write_bytes(name.read_bytes()[:-100])
    with pytest.raises(dataset.DatasetError, match="not a complete gzip file"):
        dataset.download(tmp_path / "fresh", url)
    assert not (tmp_path / "fresh" / "t10k-labels-idx1-ubyte.gz").exists()
    assert not list((tmp_path / "fresh").glob("*.tmp"))


def test_download_refuses_other_content(file_server, tmp_path):
    served, url = file_server
    serve_the_real_files(served)
    other = np.zeros((10000,), np.uint8)
    write_idx(served / "t10k-labels-idx1-ubyte.gz", other, dataset.LABELS_MAGIC)
    with pytest.raises(dataset.DatasetError, match="SHA-256"):
        dataset.download(tmp_path / "fresh", url)
    assert not (tmp_path / "fresh" / "t10k-labels-idx1-ubyte.gz").exists()


def test_download_from_nowhere_is_one_line(tmp_path):
    with pytest.raises(dataset.DatasetError, match="cannot download") as err:
        dataset.download(tmp_path / "fresh", "http://127.0.0.1:9/", timeout=2)
    assert "\n" not in str(err.value)


def test_keras_cache_is_used_when_nothing_else_is_there(monkeypatch, tmp_path):
    cache = make_dataset(tmp_path / "keras_cache")
    monkeypatch.delenv(dataset.DATA_DIR_ENV, raising=False)
    monkeypatch.setattr(dataset, "DEFAULT_DATA_DIR", str(tmp_path / "no_debian"))
    monkeypatch.setattr(dataset, "KERAS_CACHE_DIR", cache)
    assert dataset.find_data_dir() == cache
    monkeypatch.setattr(dataset, "KERAS_CACHE_DIR", tmp_path / "no_cache")
    with pytest.raises(dataset.DatasetError, match="--download"):
        dataset.find_data_dir()
