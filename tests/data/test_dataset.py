from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader

from focalstack.data.dataset import (
    ProceduralDataset,
    SceneFolderDataset,
    StackBatchSampler,
    make_item,
)
from focalstack.data.normalize import working_range_m
from focalstack.data.procedural import ProceduralConfig
from focalstack.data.stack import FocalStack
from focalstack.optics import ThinLens, render_from_depth

CAMERA = ThinLens(focal_length_m=0.02, f_number=2.0, pixel_size_m=2e-5)
FOCUS = (0.4, 0.5, 0.7, 1.0, 1.6)


def tiny_scene(seed: int, size: tuple[int, int] = (40, 48), focus=FOCUS, name: str = "s") -> FocalStack:
    """A blocky random texture on a tilted plane, rendered through CAMERA (float32, sRGB [0, 1])."""
    gen = torch.Generator().manual_seed(seed)
    H, W = size
    aif = torch.rand(1, 3, H // 4, W // 4, generator=gen)
    aif = torch.nn.functional.interpolate(aif, size=(H, W), mode="nearest")
    yy, xx = torch.meshgrid(torch.linspace(0, 1, H), torch.linspace(0, 1, W), indexing="ij")
    depth = 1.0 / (0.8 + 1.4 * (0.6 * xx + 0.4 * yy))[None, None]
    f = torch.tensor(focus, dtype=torch.float32)[None]
    images = render_from_depth(aif, depth, f, CAMERA.focal_length_m, CAMERA.f_number, CAMERA.pixel_size_m)
    return FocalStack(images[0].clamp(0, 1), torch.tensor(focus), CAMERA, depth[0, 0], aif[0], name=name)


def write_scenes(root: Path, n: int, **kw) -> Path:
    for i in range(n):
        tiny_scene(i, name=f"scene_{i}", **kw).save(root / f"scene_{i}")
    return root


def drop_camera_keys(folder: Path, *keys: str) -> dict:
    """Remove camera entries from a scene folder's scene.json (a phone without pixel pitch); the new meta."""
    meta = json.loads((folder / "scene.json").read_text())
    for key in keys:
        meta["camera"].pop(key)
    (folder / "scene.json").write_text(json.dumps(meta))
    return meta


def test_make_item_follows_the_batch_contract() -> None:
    stack = tiny_scene(0)
    item = make_item(stack, crop=32, num_slices=3, gen=torch.Generator().manual_seed(1))
    inp, tgt = item["inputs"], item["targets"]
    contract = ("stack", "focus_m", "focal_length_m", "f_number", "pixel_size_m", "depth_range_m")
    assert set(inp) == {*contract, "scene_index"}
    assert inp["scene_index"].dtype == torch.int64 and int(inp["scene_index"]) == -1  # no dataset: -1
    assert inp["stack"].shape == (3, 3, 32, 32) and inp["stack"].dtype == torch.float32
    assert inp["focus_m"].shape == (3,) and inp["depth_range_m"].shape == (2,)
    assert tgt["depth_m"].shape == (1, 32, 32) and tgt["aif"].shape == (3, 32, 32)
    assert bool(tgt["has_depth"]) and bool(tgt["has_aif"])
    # A crop keeps the physics: same camera, same pixel pitch.
    assert float(inp["pixel_size_m"]) == pytest.approx(CAMERA.pixel_size_m)
    assert float(inp["focal_length_m"]) == pytest.approx(CAMERA.focal_length_m)
    step = inp["focus_m"].diff()
    assert (step > 0).all() or (step < 0).all()  # contract: strictly monotonic
    assert all(min(abs(v - f) for f in FOCUS) < 1e-6 for v in inp["focus_m"].tolist())


def test_crop_and_flips_are_windows_of_the_scene() -> None:
    """Every augmented item is an exact (possibly flipped) window of the source slices and depth."""
    stack = tiny_scene(3)
    for seed in range(8):
        item = make_item(stack, crop=(16, 24), num_slices=5, gen=torch.Generator().manual_seed(seed))
        got = item["inputs"]["stack"]
        order = [FOCUS.index(min(FOCUS, key=lambda f, v=v: abs(f - v))) for v in item["inputs"]["focus_m"]]
        src, depth = stack.images[order], stack.depth_m
        found = False
        for flips in ([], [-1], [-2], [-1, -2]):
            g = got.flip(flips) if flips else got
            d = item["targets"]["depth_m"][0]
            d = d.flip(flips) if flips else d
            for y in range(src.shape[-2] - 16 + 1):
                for x in range(src.shape[-1] - 24 + 1):
                    if torch.equal(src[..., y : y + 16, x : x + 24], g):
                        assert torch.equal(depth[y : y + 16, x : x + 24], d)
                        found = True
        assert found, f"seed {seed}: item is not a window of the scene"


SMALL = ProceduralConfig(size=(40, 40))


def test_items_are_deterministic_per_seed_epoch_index() -> None:
    ds = ProceduralDataset(SMALL, length=4, seed=5, crop=32, num_slices=3)
    a, b = ds[(1, 0, 3)], ds[(1, 0, 3)]
    assert torch.equal(a["inputs"]["stack"], b["inputs"]["stack"])
    c = ds[(1, 1, 3)]  # next epoch: a new scene
    assert not torch.equal(a["inputs"]["stack"], c["inputs"]["stack"])
    assert ds[(2, 0, 4)]["inputs"]["stack"].shape[0] == 4  # the key's slice count wins


def test_validation_items_do_not_change_with_epoch() -> None:
    ds = ProceduralDataset(SMALL, length=2, seed=5, augment=False)
    item = ds[(0, 0, 0)]
    assert item["inputs"]["stack"].shape == (5, 3, 40, 40) and bool(item["targets"]["has_depth"])
    assert torch.equal(item["inputs"]["stack"], ds[(0, 7, 0)]["inputs"]["stack"])


def test_procedural_pool_reuses_scenes_with_fresh_augmentation() -> None:
    ds = ProceduralDataset(SMALL, length=3, seed=2, crop=24, num_slices=5, pool=2)
    items = [ds[(i, e, 5)] for e in range(2) for i in range(3)]  # pool members 0 1 0 1 0 1
    assert len(ds._cache) == 2

    def focus_set(item):
        return sorted(item["inputs"]["focus_m"].tolist())

    assert focus_set(items[0]) == focus_set(items[2]) == focus_set(items[4])
    assert focus_set(items[0]) != focus_set(items[1])
    assert not torch.equal(items[0]["inputs"]["stack"], items[2]["inputs"]["stack"])  # other crop / flips


def test_depth_range_is_the_working_range_of_all_focus_distances() -> None:
    stack = tiny_scene(1)
    item = make_item(stack, crop=None, num_slices=2, gen=torch.Generator().manual_seed(0))
    expected = working_range_m(torch.tensor(FOCUS, dtype=torch.float64)[None])[0].float()
    # The whole scene's focus range, not the drawn subset's.
    torch.testing.assert_close(item["inputs"]["depth_range_m"], expected)
    # A recorded (ground-truth) range in scene.json changes nothing: no GT may shape the inputs.
    stack.meta["depth_range_m"] = [0.3, 2.5]
    item = make_item(stack, crop=None, num_slices=2, gen=None)
    torch.testing.assert_close(item["inputs"]["depth_range_m"], expected)


def test_make_item_rejects_bad_requests() -> None:
    stack = tiny_scene(0)
    with pytest.raises(ValueError, match="cannot draw 6"):
        make_item(stack, crop=None, num_slices=6, gen=None)
    with pytest.raises(ValueError, match="smaller than the crop"):
        make_item(stack, crop=64, num_slices=2, gen=None)
    stack.focus_m = None
    with pytest.raises(ValueError, match="no focus distances"):
        make_item(stack, crop=None, num_slices=2, gen=None)


def test_scene_folder_dataset_reads_scenes(tmp_path: Path) -> None:
    root = write_scenes(tmp_path / "data", 3)
    ds = SceneFolderDataset(root, crop=32, num_slices=3, seed=0)
    assert len(ds) == 3
    item = ds[(2, 0, 3)]
    assert item["inputs"]["stack"].shape == (3, 3, 32, 32)
    val = SceneFolderDataset(root, crop=None, num_slices=None, augment=False)
    full = val[0]
    assert full["inputs"]["stack"].shape == (5, 3, 40, 48)
    torch.testing.assert_close(full["targets"]["depth_m"][0], FocalStack.load(root / "scene_0").depth_m)


def test_items_carry_their_scene_index(tmp_path: Path) -> None:
    root = write_scenes(tmp_path / "data", 3)
    ds = SceneFolderDataset(root, crop=24, num_slices=3)
    assert ds.scene_names == ["scene_0", "scene_1", "scene_2"]
    assert [int(ds[(i, 0, 3)]["inputs"]["scene_index"]) for i in range(3)] == [0, 1, 2]
    assert SceneFolderDataset(root / "scene_1", crop=24, num_slices=3).scene_names == ["scene_1"]
    procedural = ProceduralDataset(SMALL, length=2, seed=5, crop=24, num_slices=3)
    assert int(procedural[(1, 0, 3)]["inputs"]["scene_index"]) == -1  # fresh scenes: no identity
    batch = next(iter(DataLoader(ds, batch_size=2)))
    assert batch["inputs"]["scene_index"].tolist() == [0, 1]  # collates to (B,) int64
    assert batch["inputs"]["scene_index"].dtype == torch.int64


def test_incomplete_camera_needs_blur_scale_estimation(tmp_path: Path) -> None:
    from focalstack.inference.fit import resolve_camera
    from focalstack.optics.nominal import NOMINAL_SPAN_SIGMA_PX

    root = write_scenes(tmp_path / "data", 3)
    drop_camera_keys(root / "scene_1", "pixel_size_m")
    drop_camera_keys(root / "scene_2", "pixel_size_m", "f_number", "focal_length_m")
    with pytest.raises(ValueError, match=r"(?s)scene_1: incomplete camera.*estimate_blur_scale.*scene_2"):
        SceneFolderDataset(root, crop=32, num_slices=3)
    ds = SceneFolderDataset(root, crop=32, num_slices=3, estimate_blur_scale=True)
    assert len(ds) == 3
    for i in range(3):
        stack = ds.load_scene(i, 0, torch.Generator())
        # The completion `fit` uses: the same camera as resolve_camera of the scene as loaded.
        assert stack.camera == resolve_camera(FocalStack.load(root / f"scene_{i}"), estimate_blur_scale=True)
        item = ds[(i, 0, 3)]
        assert float(item["inputs"]["pixel_size_m"]) == pytest.approx(stack.camera.pixel_size_m)
    assert ds.load_scene(0, 0, torch.Generator()).camera == CAMERA  # complete cameras are kept
    scene_1 = ds.load_scene(1, 0, torch.Generator()).camera
    assert (scene_1.focal_length_m, scene_1.f_number) == (CAMERA.focal_length_m, CAMERA.f_number)
    assert scene_1.sigma_px(min(FOCUS), max(FOCUS)) == pytest.approx(NOMINAL_SPAN_SIGMA_PX)
    # Without focus distances there is nothing to complete the camera from.
    meta = json.loads((root / "scene_2" / "scene.json").read_text())
    meta["focus_distances_m"] = None
    (root / "scene_2" / "scene.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match=r"scene_2.*no focus distances"):
        SceneFolderDataset(root, crop=32, num_slices=3, estimate_blur_scale=True)


def test_make_item_names_the_option_for_an_incomplete_camera() -> None:
    stack = tiny_scene(0, name="phone")
    stack.camera = None
    with pytest.raises(ValueError, match=r"'phone' has no complete camera.*estimate_blur_scale"):
        make_item(stack, crop=None, num_slices=2, gen=None)


def test_scene_folder_dataset_rejects_unusable_scenes_by_name(tmp_path: Path) -> None:
    root = write_scenes(tmp_path / "data", 2)
    meta = json.loads((root / "scene_1" / "scene.json").read_text())
    meta["camera"].pop("pixel_size_m")
    (root / "scene_1" / "scene.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match=r"scene_1.*pixel_size_m"):
        SceneFolderDataset(root, crop=32, num_slices=3)
    meta["camera"]["pixel_size_m"] = 2e-5
    meta["focus_distances_m"] = None
    (root / "scene_1" / "scene.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match=r"scene_1.*no focus distances"):
        SceneFolderDataset(root, crop=32, num_slices=3)
    with pytest.raises(ValueError, match="smaller than the crop"):
        SceneFolderDataset(root / "scene_0", crop=64, num_slices=3)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no scene folders"):
        SceneFolderDataset(tmp_path / "empty")
    with pytest.raises(ValueError, match="not a folder"):
        SceneFolderDataset(tmp_path / "missing")


def test_dataloader_with_workers_matches_single_process(tmp_path: Path) -> None:
    root = write_scenes(tmp_path / "data", 4)
    ds = SceneFolderDataset(root, crop=24, num_slices=3, seed=3)
    sampler = StackBatchSampler(ds, 2, num_slices=3, min_slices=2, seed=3)
    sampler.set_epoch(1)
    serial = list(DataLoader(ds, batch_sampler=sampler, num_workers=0))
    parallel = list(DataLoader(ds, batch_sampler=sampler, num_workers=2))
    assert len(serial) == len(parallel) == 2
    for a, b in zip(serial, parallel):
        assert a["inputs"]["stack"].shape[:2] == b["inputs"]["stack"].shape[:2]
        torch.testing.assert_close(a["inputs"]["stack"], b["inputs"]["stack"], rtol=0, atol=0)
        assert a["inputs"]["focus_m"].shape == (2, a["inputs"]["stack"].shape[1])
        assert a["targets"]["has_depth"].dtype == torch.bool


def test_batch_sampler_shards_and_resumes() -> None:
    data = list(range(10))
    shards = []
    for rank in range(2):
        s = StackBatchSampler(data, 2, num_slices=5, min_slices=2, seed=1, rank=rank, world_size=2)
        s.set_epoch(3)
        batches = list(s)
        assert len(batches) == len(s) == 2
        for b in batches:
            assert len({k[2] for k in b}) == 1 and 2 <= b[0][2] <= 5  # one slice count per batch
            assert all(k[1] == 3 for k in b)
        shards.append([k[0] for b in batches for k in b])
        s.set_epoch(3, start_batch=1)
        assert list(s) == batches[1:]  # resuming mid-epoch skips exactly the consumed batches
    assert not set(shards[0]) & set(shards[1])
    with pytest.raises(ValueError, match="min_slices"):
        StackBatchSampler(data, 2, num_slices=3, min_slices=4)
    with pytest.raises(ValueError, match="no full batch"):
        StackBatchSampler(data, 20, num_slices=3)


def test_shared_lightfield_scene_is_usable_and_phone_scenes_are_rejected(shared_data: Path) -> None:
    ds = SceneFolderDataset(shared_data / "lightfield", crop=64, num_slices=5)
    item = ds[0]
    assert item["inputs"]["stack"].shape == (5, 3, 64, 64)
    assert bool(item["targets"]["has_depth"])
    near, far = item["inputs"]["depth_range_m"].tolist()
    # the focus range 6.30-8.20 m widened by one diopter spacing, not scene.json's GT range 6.20-8.23 m
    assert near < 6.30 and far > 8.20 and (near, far) != pytest.approx((6.2023506, 8.2330875))
    expected = r"(?s)mobiledepth_balls: no focus distances.*pixel6_floor: incomplete camera"
    with pytest.raises(ValueError, match=expected):
        SceneFolderDataset(shared_data / "real", crop=64, num_slices=2)
    # A phone without pixel pitch trains with a nominal camera and an estimated blur scale.
    phone = SceneFolderDataset(shared_data / "real" / "pixel6_floor", 64, 2, estimate_blur_scale=True)
    assert phone.scene_names == ["pixel6_floor"] and float(phone[0]["inputs"]["pixel_size_m"]) > 0


def test_find_scene_folders_follows_symlinked_scenes(tmp_path):
    from focalstack.data.dataset import find_scene_folders

    real = tmp_path / "real" / "scene_a"
    real.mkdir(parents=True)
    (real / "scene.json").write_text("{}")
    links = tmp_path / "links"
    links.mkdir()
    (links / "scene_a").symlink_to(real, target_is_directory=True)
    assert find_scene_folders(links) == [links / "scene_a"]
