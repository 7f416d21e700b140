"""Code extraction: once (by rank 0 alone under torch.distributed), in evaluation mode, compact on disk, resumable;
served per level for prior training; the old import path still works."""

from __future__ import annotations

import json

import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from monai.data import Dataset

from monai_vqvae2.data import CodeDataset, make_slice_dataset
from monai_vqvae2.inferers import extract_codes
from monai_vqvae2.networks import VQVAE2
from tests.data.conftest import known_volume, write_nifti

TINY = {"channels": 8, "num_res_layers": 1, "num_res_channels": 4, "num_embeddings": 16, "embedding_dim": 4}


def slices(count: int = 10):
    generator = torch.Generator().manual_seed(0)
    return Dataset(
        [
            {
                "image": torch.rand(1, 32, 32, generator=generator),
                "subject": f"s{i % 3}",
                "source": f"v{i % 3}.nii",
                "slice_index": i,
                "slice_position": i / (count - 1),
            }
            for i in range(count)
        ]
    )


def test_extracted_codes_equal_index_quantize_and_leave_the_codebooks_alone(tmp_path):
    torch.manual_seed(0)
    network = VQVAE2(2, 1, 1, **TINY)
    network(torch.rand(8, 1, 32, 32))  # initialise the codebooks
    network.train()  # extraction must not update them even when handed a network in training mode
    codebooks = {k: v.clone() for k, v in network.state_dict().items() if k.startswith("quantizers")}
    checkpoint = tmp_path / "model.pt"
    torch.save(network.state_dict(), checkpoint)
    data = slices()
    path = extract_codes(network, data, tmp_path / "codes" / "train.npz", batch_size=4, checkpoint=checkpoint)
    for key, value in network.state_dict().items():
        if key in codebooks:
            assert torch.equal(value, codebooks[key]), key
    assert network.training
    expected = network.index_quantize(torch.stack([item["image"] for item in data]))
    with np.load(path) as stored:
        assert stored["level0"].dtype == np.uint16 and stored["level0"].shape == (10, 4, 4)
        assert stored["level1"].shape == (10, 8, 8)
        np.testing.assert_array_equal(stored["level1"], expected[1].numpy())
        assert stored["subject"].tolist()[:4] == ["s0", "s1", "s2", "s0"]

    top, bottom = CodeDataset(path, level=0), CodeDataset(path, level=1)
    assert len(top) == len(bottom) == 10 and "condition" not in top[0]
    assert torch.equal(bottom[3]["indices"], expected[1][3]) and torch.equal(bottom[3]["condition"], expected[0][3])
    assert bottom[9]["slice_position"].tolist() == [1.0] and bottom[9]["indices"].dtype == torch.long
    assert bottom.settings["checkpoint_sha256"] and bottom.settings["num_slices"] == 10


def test_rerun_with_the_same_checkpoint_reuses_the_file_and_a_new_checkpoint_recomputes(tmp_path):
    network = VQVAE2(2, 1, 1, **TINY).eval()
    checkpoint = tmp_path / "model.pt"
    torch.save(network.state_dict(), checkpoint)
    path = extract_codes(network, slices(), tmp_path / "codes.npz", checkpoint=checkpoint)
    stamp = path.stat().st_mtime_ns
    extract_codes(network, slices(), path, checkpoint=checkpoint)
    assert path.stat().st_mtime_ns == stamp
    torch.save({k: v + 1 if v.is_floating_point() else v for k, v in network.state_dict().items()}, checkpoint)
    extract_codes(network, slices(), path, checkpoint=checkpoint)
    assert path.stat().st_mtime_ns != stamp
    assert sorted(p.name for p in tmp_path.iterdir()) == ["codes.npz", "model.pt"]


class _Unreadable(torch.utils.data.Dataset):
    def __len__(self) -> int:
        return 4

    def __getitem__(self, index: int):
        raise OSError(f"slice {index} is unreadable")


def _extract_on_rank(rank: int, folder, world_size: int) -> None:
    """One gloo rank: extract good codes, then codes of an unreadable dataset; record what this rank saw."""
    dist.init_process_group("gloo", init_method=f"file://{folder / 'rendezvous'}", rank=rank, world_size=world_size)
    try:
        torch.manual_seed(0)
        network = VQVAE2(2, 1, 1, **TINY).eval()
        encoded = []
        quantize = network.index_quantize

        def counting_quantize(images):
            encoded.append(len(images))
            return quantize(images)

        network.index_quantize = counting_quantize
        path = extract_codes(network, slices(), folder / "codes.npz", batch_size=4)
        record = {"encoded": sum(encoded), "path": str(path), "readable": len(CodeDataset(path))}
        try:
            extract_codes(network, _Unreadable(), folder / "broken.npz")
        except (OSError, RuntimeError) as error:
            record["error"] = f"{type(error).__name__}: {error}"
        (folder / f"rank{rank}.json").write_text(json.dumps(record))
    finally:
        dist.destroy_process_group()


def test_under_torch_distributed_rank0_alone_encodes_and_its_errors_reach_every_rank(tmp_path):
    mp.spawn(_extract_on_rank, args=(tmp_path, 2), nprocs=2)
    first, second = (json.loads((tmp_path / f"rank{rank}.json").read_text()) for rank in range(2))
    assert first["encoded"] == 10 and second["encoded"] == 0  # rank 1 waited for rank 0's file, then read it
    assert first["path"] == second["path"] == str(tmp_path / "codes.npz")
    assert first["readable"] == second["readable"] == 10
    assert first["error"] == "OSError: slice 0 is unreadable"
    assert second["error"] == (
        f"RuntimeError: Rank 0 failed to extract the codes to {str(tmp_path / 'broken.npz')!r}: "
        "OSError: slice 0 is unreadable"
    )
    assert not (tmp_path / "broken.npz").exists()


def test_the_old_import_path_gives_the_same_function():
    import monai_vqvae2.data

    assert monai_vqvae2.data.extract_codes is extract_codes


def test_codes_of_slices_made_another_way_are_extracted_again(tmp_path):
    volume = [{"image": str(write_nifti(tmp_path / "v.nii.gz", known_volume())), "subject": "s"}]
    network = VQVAE2(2, 1, 1, **TINY).eval()
    checkpoint = tmp_path / "model.pt"
    torch.save(network.state_dict(), checkpoint)
    first = make_slice_dataset(volume, image_size=32, crop_margin=0)
    path = extract_codes(network, first, tmp_path / "codes.npz", checkpoint=checkpoint)
    assert CodeDataset(path).settings["preprocessing"] == first.preprocessing.to_dict()
    stamp = path.stat().st_mtime_ns
    extract_codes(network, make_slice_dataset(volume, image_size=32, crop_margin=0), path, checkpoint=checkpoint)
    assert path.stat().st_mtime_ns == stamp
    other = make_slice_dataset(volume, image_size=32, crop_margin=1)  # as many slices, made another way
    assert len(other) == len(first)
    extract_codes(network, other, path, checkpoint=checkpoint)
    assert path.stat().st_mtime_ns != stamp
    assert CodeDataset(path).settings["preprocessing"]["crop_margin"] == 1
