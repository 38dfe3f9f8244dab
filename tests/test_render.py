"""The MP4 renderer (`training.animation.render`): the numpy rasteriser and shading, and the H.264 + AAC writer,
read back with PyAV. The PNG/GIF renders are exercised by the runner's tests."""

from fractions import Fraction

import numpy as np
import pytest

av = pytest.importorskip("av", reason="PyAV is in the `demo` and `dev` extras: pip install -e '.[demo]'")

from training.animation.data import Regions, default_animation_dir  # noqa: E402
from training.animation.render import (  # noqa: E402
    BACKGROUND,
    FrameView,
    rasterize,
    back_face_winding,
    read_obj_faces,
    render_mesh,
    render_video,
    render_video_frames,
    vertex_albedo,
    vertex_normals,
    write_mp4,
)
from training.common.audio import decode_audio  # noqa: E402

SAMPLE = default_animation_dir()
NAME = "FaceTalk_170725_00137_TA_sentence01"


@pytest.fixture(scope="module")
def sample():
    vertices = np.load(SAMPLE / "vertices_npy" / f"{NAME}.npy")[::2]  # 60 -> 30 fps
    return {
        "vertices": vertices,
        "faces": read_obj_faces(SAMPLE / "mesh.obj"),
        "audio": decode_audio(str(SAMPLE / "wav" / f"{NAME}.wav")),
        "lips": Regions.from_folder(SAMPLE).lip,
    }


def read_back(path):
    with av.open(str(path)) as container:
        video = container.streams.video[0]
        audio = container.streams.audio[0] if container.streams.audio else None
        info = {
            "codec": video.codec_context.name,
            "pix_fmt": video.codec_context.pix_fmt,
            "rate": video.average_rate,
            "size": (video.codec_context.width, video.codec_context.height),
            "audio": None if audio is None else {
                "codec": audio.codec_context.name,
                "rate": audio.codec_context.sample_rate,
                "seconds": float(audio.duration * audio.time_base),
            },
        }
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
    info["frames"] = len(frames)
    return info, frames


@pytest.mark.parametrize("fps", [30, 25])
def test_mp4_has_the_model_fps_every_frame_and_the_audio(sample, tmp_path, fps):
    vertices = sample["vertices"][: int(len(sample["audio"]) / 16000 * fps)]
    rows = {"ground truth": vertices, "prediction": vertices[::-1].copy()}
    path = render_video(tmp_path / "out.mp4", rows, fps, sample["faces"], sample["audio"], 16000, lips=sample["lips"],
                        height=200)
    info, frames = read_back(path)
    assert info["codec"] == "h264" and info["pix_fmt"] == "yuv420p"
    assert info["rate"] == fps and info["frames"] == len(vertices)
    assert info["size"][0] % 2 == 0 and info["size"][1] % 2 == 0 and info["size"][1] >= 200
    assert info["audio"]["codec"] == "aac" and info["audio"]["rate"] == 16000
    assert info["audio"]["seconds"] == pytest.approx(len(sample["audio"]) / 16000, abs=0.07)
    # two faces side by side: both halves of the picture have lit pixels
    half = frames[0].shape[1] // 2
    for part in (frames[0][:, :half], frames[0][:, half:]):
        assert (part.astype(int).sum(-1) > BACKGROUND.astype(int).sum() + 120).mean() > 0.1


def test_audio_from_a_file_and_a_fractional_rate(sample, tmp_path):
    path = render_video(tmp_path / "out.mp4", {"prediction": sample["vertices"][:20]}, 30000 / 1001, sample["faces"],
                        SAMPLE / "wav" / f"{NAME}.wav", 16000, height=120, labels=False)
    info, _ = read_back(path)
    assert info["rate"] == Fraction(30000, 1001) and info["frames"] == 20
    assert info["audio"]["seconds"] == pytest.approx(len(sample["audio"]) / 16000, abs=0.07)


def test_silent_video_and_point_cloud_without_triangles(sample, tmp_path):
    path = render_video(tmp_path / "points.mp4", {"prediction": sample["vertices"][:5]}, 30, None, height=100)
    info, frames = read_back(path)
    assert info["audio"] is None and info["frames"] == 5
    assert (frames[0].astype(int).sum(-1) > BACKGROUND.astype(int).sum() + 120).any()


def test_shading_lights_the_face_brighter_than_the_background(sample):
    vertices = sample["vertices"][0].reshape(-1, 3)
    view = FrameView([vertices], 240)
    image = render_mesh(vertices, sample["faces"], view, vertex_albedo(len(vertices))).astype(float)
    luminance = image @ np.array([0.299, 0.587, 0.114])
    background = float(BACKGROUND @ np.array([0.299, 0.587, 0.114]))
    face = np.abs(image - BACKGROUND).sum(-1) > 3
    assert 0.2 < face.mean() < 0.9
    assert luminance[face].mean() > background + 80
    # front lighting: surfaces facing the camera are brighter than those at grazing angles
    normals = vertex_normals(vertices, sample["faces"])
    facing, grazing = normals[:, 2] > 0.95, normals[:, 2] < np.quantile(normals[:, 2], 0.1)
    assert facing.any() and grazing.any()
    screen = view.project(vertices).round().astype(int).clip(0, [view.width - 1, view.height - 1])
    assert luminance[screen[facing, 1], screen[facing, 0]].mean() > luminance[screen[grazing, 1], screen[grazing, 0]].mean()


def test_rasterizer_fills_triangles_and_keeps_the_nearest():
    screen = np.array([[2.0, 2.0], [18.0, 2.0], [2.0, 18.0], [18.0, 18.0]])
    faces = np.array([[0, 1, 2], [1, 3, 2]])
    red, blue = np.array([1.0, 0, 0]), np.array([0, 0, 1.0])
    one = rasterize(screen, np.zeros(4), np.tile(red, (4, 1)), faces[:1], 20, 20)
    covered = (one != BACKGROUND).any(-1)
    assert covered.sum() == pytest.approx(16 * 16 / 2, rel=0.1)  # the triangle's area in pixels
    # two coincident squares at different depths: the nearer (larger z) one wins whatever the order
    both = np.concatenate([faces, faces + 4])
    for near_first in (True, False):
        depth = np.array([1.0] * 4 + [0.0] * 4) if near_first else np.array([0.0] * 4 + [1.0] * 4)
        colors = np.array([red] * 4 + [blue] * 4) if near_first else np.array([blue] * 4 + [red] * 4)
        image = rasterize(np.concatenate([screen, screen]), depth, colors, both, 20, 20)
        inside = image[5:15, 5:15].reshape(-1, 3)
        assert (inside == [255, 0, 0]).all()


def test_back_face_culling_changes_no_pixel(sample):
    vertices = sample["vertices"][10].reshape(-1, 3)
    view = FrameView([vertices], 200)
    albedo = vertex_albedo(len(vertices), sample["lips"])
    cull = back_face_winding(vertices, sample["faces"], view)
    assert cull in (1, -1)  # the sample mesh is consistently wound
    culled = render_mesh(vertices, sample["faces"], view, albedo, cull)
    assert (culled == render_mesh(vertices, sample["faces"], view, albedo)).all()
    assert (culled != render_mesh(vertices, sample["faces"], view, albedo, -cull)).any(-1).mean() > 0.1
    mixed = sample["faces"].copy()
    mixed[::2] = mixed[::2, ::-1]  # half the triangles flipped: nothing may be culled
    assert back_face_winding(vertices, mixed, view) == 0


def test_frames_are_as_many_as_the_shortest_row_and_even_sized(sample):
    frames = list(render_video_frames({"a": sample["vertices"][:7], "b": sample["vertices"][:4]}, sample["faces"],
                                      height=101))
    assert len(frames) == 4 and frames[0].shape[0] % 2 == 0 and frames[0].shape[1] % 2 == 0


def test_clear_errors(sample, tmp_path):
    with pytest.raises(ValueError, match="even frame size"):
        write_mp4(tmp_path / "odd.mp4", [np.zeros((11, 10, 3), np.uint8)], 30)
    with pytest.raises(ValueError, match="No frames"):
        write_mp4(tmp_path / "none.mp4", [], 30)
    broken = sample["vertices"][:3].copy()
    broken[1, 0] = np.nan
    with pytest.raises(ValueError, match="non-finite"):
        render_video(tmp_path / "nan.mp4", {"prediction": broken}, 30, sample["faces"])
    with pytest.raises(ValueError, match="index vertex"):
        render_video(tmp_path / "x.mp4", {"p": sample["vertices"][:2, :30]}, 30, sample["faces"])


def test_animate_cli_writes_a_video_beside_the_ground_truth(tmp_path):
    """`training.animate --video` on a tiny trained FaceFormer: the prediction alone for a wav outside a dataset, next
    to the ground truth for a dataset's wav (found in its vertices_npy/), at the model's frame rate, with the audio."""
    import shutil

    import torch
    from transformers import AutoModel, HubertConfig

    from training import animate, train_animation

    torch.manual_seed(1)
    AutoModel.from_config(HubertConfig(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37, conv_dim=(16,) * 7,
        num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2, layerdrop=0.0, mask_time_prob=0.0,
    )).save_pretrained(tmp_path / "hubert")
    model = tmp_path / "faceformer"
    train_animation.main([
        "--model", "faceformer", "--audio_encoder", str(tmp_path / "hubert"), "--output_dir", str(model),
        "--max_train_steps", "1", "--max_test_sequences", "1", "--eval_conditions", "first", "--render_frames", "0",
        "--render_gif", "false", "--cpu_threads", "0",
    ])
    wav = SAMPLE / "wav" / f"{NAME}.wav"
    alone = tmp_path / "alone.wav"
    shutil.copyfile(wav, alone)
    widths = {}
    for source, video in ((alone, tmp_path / "alone.mp4"), (wav, tmp_path / "with_truth.mp4")):
        assert animate.main(["--model_name_or_path", str(model), "--audio", str(source),
                             "--output_dir", str(tmp_path / "out"), "--video", str(video), "--video_height", "160"]) == 0
        info, frames = read_back(video)
        (written,) = (tmp_path / "out").glob(f"{source.stem}_*.npy")
        predicted = np.load(written)
        assert info["rate"] == 30 and info["frames"] == len(predicted)
        assert info["audio"]["seconds"] == pytest.approx(len(decode_audio(str(wav))) / 16000, abs=0.07)
        widths[source] = info["size"][0]
    assert widths[wav] > 1.8 * widths[alone]  # two panels: ground truth and prediction
