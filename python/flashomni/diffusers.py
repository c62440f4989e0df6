"""FlashOmni Python layer: diffusers attention processors that run Q projection (gemm_q),
attention (sparse_attention) and output projection (gemm_o_update / gemm_o_dispatch) through a
FlashOmniEngine's per-layer Update–Dispatch state.

Supported modules (diffusers 0.42 class names):
- FLUX double-stream (FluxTransformerBlock.attn): text first; the text and image tokens have
  their own projections, so image rows run with row_offset = text length;
- FLUX single-stream (FluxSingleTransformerBlock): one joint projection; the block's fused
  proj_out over [attention | MLP] is replaced by FlashOmniProjOut (gemm_o with the MLP columns as
  extra always-active columns);
- HunyuanVideo double- and single-stream blocks (HunyuanVideoTransformerBlock /
  HunyuanVideoSingleTransformerBlock): text last (row_offset = video length for text rows);
- Wan 2.1 self-attention (WanTransformerBlock.attn1): video tokens only, so the policy gets no
  text range; Q is RMS-normalised over all heads (project_q full_rows). The cross-attention to
  the text (attn2: other keys, other length) keeps the stock processor.

Example:
    engine = FlashOmniEngine(EngineConfig(schedule=ScheduleConfig(num_steps=50)))
    undo = apply_flux(model, engine)        # FluxTransformer2DModel
    for s in range(50):
        engine.set_step(s)
        ...model(...)...
    undo()                                  # stock processors and proj_out back

Limits (raised, never silently worked around): attention masks other than all-true, fused QKV
projections, IP-adapter processors. Every processor call of a layer is one denoising step.
"""

import torch
from diffusers.models.embeddings import apply_rotary_emb

from .engine import StepKind

__all__ = [
    "FluxDoubleProcessor",
    "FluxSingleProcessor",
    "HunyuanVideoProcessor",
    "WanSelfAttentionProcessor",
    "FlashOmniProjOut",
    "apply_flux",
    "apply_hunyuan_video",
    "apply_wan",
]


def _heads(attn):
    heads = attn.heads
    return heads, attn.to_q.out_features // heads


def _check_unfused(attn):
    if getattr(attn, "fused_projections", False):
        raise NotImplementedError("FlashOmni processors need unfused Q/K/V projections (GEMM-Q "
                                  "reads to_q alone); call unfuse_qkv_projections()")


def _split_heads(t, heads):
    return t.unflatten(-1, (heads, -1))


def _norm(norm, t):
    return t if norm is None else norm(t)


def _zeros(like, *shape):
    """A broadcast zero (no memory): the attention output of a reuse step, never read."""
    return like.new_zeros(()).expand(*shape)


class _Shared:
    """What a FLUX single-stream processor learns from the double-stream ones of the same
    forward pass: the text length (FLUX passes the single blocks only the joint sequence)."""

    def __init__(self, text_tokens=None):
        self.text_tokens = text_tokens


class FluxDoubleProcessor:
    """For FluxAttention with added_kv_proj_dim (FluxTransformerBlock): joint attention over
    [text | image] with separate projections; returns (image output, text output)."""

    def __init__(self, layer, shared=None):
        self.layer = layer
        self.shared = shared or _Shared()

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None,
                 image_rotary_emb=None):
        if encoder_hidden_states is None or attn.added_kv_proj_dim is None:
            raise ValueError("argument 'encoder_hidden_states': FluxDoubleProcessor serves "
                             "double-stream attention (FluxSingleProcessor the single-stream)")
        if attention_mask is not None:
            raise NotImplementedError("argument 'attention_mask': not supported by FlashOmni")
        _check_unfused(attn)
        layer = self.layer
        heads, head_dim = _heads(attn)
        n_txt = encoder_hidden_states.shape[1]
        self.shared.text_tokens = n_txt
        kind = layer.begin()
        if kind == StepKind.REUSE:
            img = layer.project_o("img", None, attn.to_out[0], heads=heads, head_dim=head_dim,
                                  row_offset=n_txt)
            txt = layer.project_o("txt", None, attn.to_add_out, heads=heads, head_dim=head_dim)
            return attn.to_out[1](img), txt

        q_img = layer.project_q(hidden_states, attn.to_q, heads=heads, row_offset=n_txt)
        q_txt = layer.project_q(encoder_hidden_states, attn.add_q_proj, heads=heads)
        q = torch.cat([attn.norm_added_q(_split_heads(q_txt, heads)),
                       attn.norm_q(_split_heads(q_img, heads))], dim=1)
        k = torch.cat([attn.norm_added_k(_split_heads(attn.add_k_proj(encoder_hidden_states),
                                                      heads)),
                       attn.norm_k(_split_heads(attn.to_k(hidden_states), heads))], dim=1)
        v = torch.cat([_split_heads(attn.add_v_proj(encoder_hidden_states), heads),
                       _split_heads(attn.to_v(hidden_states), heads)], dim=1)
        if image_rotary_emb is not None:
            q = apply_rotary_emb(q, image_rotary_emb, sequence_dim=1)
            k = apply_rotary_emb(k, image_rotary_emb, sequence_dim=1)
        o = layer.attention(q, k, v, text=(0, n_txt)).flatten(2, 3).to(q.dtype)
        img = layer.project_o("img", o[:, n_txt:], attn.to_out[0], heads=heads,
                              head_dim=head_dim, row_offset=n_txt)
        txt = layer.project_o("txt", o[:, :n_txt], attn.to_add_out, heads=heads,
                              head_dim=head_dim)
        return attn.to_out[1](img), txt


class FluxSingleProcessor:
    """For the pre-only FluxAttention of FluxSingleTransformerBlock: joint attention over the
    joint sequence [text | image]; returns the attention output [B, N, heads * head_dim] that
    the block concatenates with its MLP branch before proj_out (a FlashOmniProjOut)."""

    def __init__(self, layer, shared=None):
        self.layer = layer
        self.shared = shared or _Shared()

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None,
                 image_rotary_emb=None):
        if encoder_hidden_states is not None:
            raise ValueError("argument 'encoder_hidden_states': FluxSingleProcessor serves "
                             "single-stream attention (FluxDoubleProcessor the double-stream)")
        if attention_mask is not None:
            raise NotImplementedError("argument 'attention_mask': not supported by FlashOmni")
        if self.shared.text_tokens is None:
            raise ValueError("text length unknown: no double-stream block ran before this one; "
                             "pass apply_flux(..., text_tokens=n)")
        _check_unfused(attn)
        layer = self.layer
        heads, head_dim = _heads(attn)
        batch, n = hidden_states.shape[:2]
        if layer.begin() == StepKind.REUSE:
            return _zeros(hidden_states, batch, n, heads * head_dim)
        q = attn.norm_q(_split_heads(layer.project_q(hidden_states, attn.to_q, heads=heads),
                                     heads))
        k = attn.norm_k(_split_heads(attn.to_k(hidden_states), heads))
        v = _split_heads(attn.to_v(hidden_states), heads)
        if image_rotary_emb is not None:
            q = apply_rotary_emb(q, image_rotary_emb, sequence_dim=1)
            k = apply_rotary_emb(k, image_rotary_emb, sequence_dim=1)
        return layer.attention(q, k, v, text=(0, self.shared.text_tokens)).flatten(2, 3).to(
            q.dtype)


class FlashOmniProjOut(torch.nn.Module):
    """Replaces a single-stream block's proj_out: input [attention (heads * head_dim) | MLP],
    projected through the layer's GEMM-O cache with the MLP columns always active. Holds the
    original nn.Linear (same parameters), so state dicts keep their keys under `.linear`."""

    def __init__(self, linear, layer, heads, head_dim):
        super().__init__()
        if linear.in_features <= heads * head_dim:
            raise ValueError(f"argument 'linear': expected more than heads * head_dim = "
                             f"{heads * head_dim} input features, got {linear.in_features}")
        self.linear = linear
        self.layer = layer
        self.heads = heads
        self.head_dim = head_dim

    @property
    def weight(self):
        return self.linear.weight

    @property
    def bias(self):
        return self.linear.bias

    def forward(self, x):
        return self.layer.project_o("out", x, self.linear, heads=self.heads,
                                    head_dim=self.head_dim)


class HunyuanVideoProcessor:
    """For HunyuanVideo's Attention (HunyuanVideoAttnProcessor2_0's place): joint attention over
    [video | text]. Double-stream (add_q_proj set): separate text projections, text rows at
    row_offset = video length; returns (video output, text output). Single-stream (pre-only):
    one joint projection; returns the attention output split (video, text) for the block's
    FlashOmniProjOut. The text mask must be all true (checked at update steps, where a host
    read is allowed; assumed unchanged through the generation)."""

    def __init__(self, layer):
        self.layer = layer

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None,
                 image_rotary_emb=None):
        if encoder_hidden_states is None:
            raise ValueError("argument 'encoder_hidden_states': required (joint attention)")
        _check_unfused(attn)
        layer = self.layer
        heads, head_dim = _heads(attn)
        batch, n_vid = hidden_states.shape[:2]
        n_txt = encoder_hidden_states.shape[1]
        joint = attn.add_q_proj is None
        kind = layer.begin()
        if kind == StepKind.UPDATE and attention_mask is not None and not bool(
                attention_mask.all()):
            raise NotImplementedError("argument 'attention_mask': FlashOmni needs every text "
                                      "token valid (padding masks are not supported)")
        if kind == StepKind.REUSE:
            if joint:
                return (_zeros(hidden_states, batch, n_vid, heads * head_dim),
                        _zeros(hidden_states, batch, n_txt, heads * head_dim))
            vid = layer.project_o("img", None, attn.to_out[0], heads=heads, head_dim=head_dim)
            txt = layer.project_o("txt", None, attn.to_add_out, heads=heads, head_dim=head_dim,
                                  row_offset=n_vid)
            return attn.to_out[1](vid), txt

        x = torch.cat([hidden_states, encoder_hidden_states], dim=1) if joint else hidden_states
        q = _norm(attn.norm_q, _split_heads(layer.project_q(x, attn.to_q, heads=heads), heads))
        k = _norm(attn.norm_k, _split_heads(attn.to_k(x), heads))
        v = _split_heads(attn.to_v(x), heads)
        if image_rotary_emb is not None and joint:
            # Rotary embedding on the video tokens only (the first n_vid).
            q = torch.cat([apply_rotary_emb(q[:, :n_vid], image_rotary_emb, sequence_dim=1),
                           q[:, n_vid:]], dim=1)
            k = torch.cat([apply_rotary_emb(k[:, :n_vid], image_rotary_emb, sequence_dim=1),
                           k[:, n_vid:]], dim=1)
        elif image_rotary_emb is not None:
            q = apply_rotary_emb(q, image_rotary_emb, sequence_dim=1)
            k = apply_rotary_emb(k, image_rotary_emb, sequence_dim=1)
        if not joint:
            q_txt = layer.project_q(encoder_hidden_states, attn.add_q_proj, heads=heads,
                                    row_offset=n_vid)
            q = torch.cat([q, _norm(attn.norm_added_q, _split_heads(q_txt, heads))], dim=1)
            k = torch.cat([k, _norm(attn.norm_added_k, _split_heads(
                attn.add_k_proj(encoder_hidden_states), heads))], dim=1)
            v = torch.cat([v, _split_heads(attn.add_v_proj(encoder_hidden_states), heads)], dim=1)
        n = n_vid + n_txt
        o = layer.attention(q, k, v, text=(n_vid, n)).flatten(2, 3).to(q.dtype)
        if joint:
            return o[:, :n_vid], o[:, n_vid:]
        vid = layer.project_o("img", o[:, :n_vid], attn.to_out[0], heads=heads,
                              head_dim=head_dim)
        txt = layer.project_o("txt", o[:, n_vid:], attn.to_add_out, heads=heads,
                              head_dim=head_dim, row_offset=n_vid)
        return attn.to_out[1](vid), txt


def _wan_rotary(x, freqs_cos, freqs_sin):
    """WanAttnProcessor's rotary embedding (a local function there): x [B, N, H, d], freqs
    [1, N, 1, d] (each frequency twice, interleaved), pairs (2i, 2i + 1) rotated."""
    x1, x2 = x.unflatten(-1, (-1, 2)).unbind(-1)
    cos, sin = freqs_cos[..., 0::2], freqs_sin[..., 1::2]
    out = torch.empty_like(x)
    out[..., 0::2] = x1 * cos - x2 * sin
    out[..., 1::2] = x1 * sin + x2 * cos
    return out.type_as(x)


class WanSelfAttentionProcessor:
    """For WanAttention as a WanTransformerBlock's attn1 (WanAttnProcessor's place): self-
    attention over the video tokens, no text in the sequence (the policy gets text=None).
    norm_q / norm_k are RMS norms over all heads of a token, applied before the heads split, so
    Q is projected with full_rows (every head of a query block active in any head). Returns the
    output projection (to_out), like the stock processor. Without text the default policy's
    text-image score caches no query block (only key blocks are skipped: measured on the tiny
    test model, query density 1, key density 0.6-0.8 at tau 1): query caching needs the
    output-change score, EngineConfig(query_score="output_change") (tests/python/
    test_diffusers.py: query density < 1 on the tiny model at tau_q 1)."""

    def __init__(self, layer):
        self.layer = layer

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None,
                 rotary_emb=None):
        if encoder_hidden_states is not None or attn.add_k_proj is not None:
            raise ValueError("argument 'encoder_hidden_states': WanSelfAttentionProcessor serves "
                             "self-attention (attn1); cross-attention (attn2) keeps the stock "
                             "processor")
        if attention_mask is not None:
            raise NotImplementedError("argument 'attention_mask': not supported by FlashOmni")
        _check_unfused(attn)
        layer = self.layer
        heads, head_dim = _heads(attn)
        if layer.begin() == StepKind.REUSE:
            return attn.to_out[1](layer.project_o("out", None, attn.to_out[0], heads=heads,
                                                  head_dim=head_dim))
        q = layer.project_q(hidden_states, attn.to_q, heads=heads, full_rows=True)
        q = _split_heads(attn.norm_q(q), heads)
        k = _split_heads(attn.norm_k(attn.to_k(hidden_states)), heads)
        v = _split_heads(attn.to_v(hidden_states), heads)
        if rotary_emb is not None:
            q, k = _wan_rotary(q, *rotary_emb), _wan_rotary(k, *rotary_emb)
        o = layer.attention(q, k, v, text=None).flatten(2, 3).to(q.dtype)
        return attn.to_out[1](layer.project_o("out", o, attn.to_out[0], heads=heads,
                                              head_dim=head_dim))


def _swap(undo, module, processor):
    undo.append((module.set_processor, module.processor))
    module.set_processor(processor)


def _wrap_proj_out(undo, block, layer, attn):
    heads, head_dim = _heads(attn)
    original = block.proj_out
    block.proj_out = FlashOmniProjOut(original, layer, heads, head_dim)
    undo.append((lambda m, b=block: setattr(b, "proj_out", m), original))


def _undoer(undo):
    def remove():
        while undo:
            setter, value = undo.pop()
            setter(value)

    return remove


def apply_flux(model, engine, *, text_tokens=None):
    """Installs FlashOmni on a diffusers FluxTransformer2DModel (layers named after the
    modules: "transformer_blocks.3", "single_transformer_blocks.0", ...). text_tokens: the text
    length, only needed when the model has no double-stream block. Returns a callable that puts
    the stock processors and proj_out modules back."""
    undo = []
    shared = _Shared(text_tokens)
    for i, block in enumerate(model.transformer_blocks):
        layer = engine.layer(f"transformer_blocks.{i}")
        _swap(undo, block.attn, FluxDoubleProcessor(layer, shared))
    for i, block in enumerate(model.single_transformer_blocks):
        layer = engine.layer(f"single_transformer_blocks.{i}")
        _swap(undo, block.attn, FluxSingleProcessor(layer, shared))
        _wrap_proj_out(undo, block, layer, block.attn)
    return _undoer(undo)


def apply_hunyuan_video(model, engine):
    """Installs FlashOmni on a diffusers HunyuanVideoTransformer3DModel's double- and
    single-stream blocks (the text refiner keeps its stock attention). Returns the undo
    callable."""
    undo = []
    for i, block in enumerate(model.transformer_blocks):
        _swap(undo, block.attn, HunyuanVideoProcessor(engine.layer(f"transformer_blocks.{i}")))
    for i, block in enumerate(model.single_transformer_blocks):
        layer = engine.layer(f"single_transformer_blocks.{i}")
        _swap(undo, block.attn, HunyuanVideoProcessor(layer))
        _wrap_proj_out(undo, block, layer, block.attn)
    return _undoer(undo)


def apply_wan(model, engine):
    """Installs FlashOmni on a diffusers WanTransformer3DModel's self-attention (blocks.i.attn1,
    layer "blocks.i"); the cross-attention (attn2) keeps its stock processor. Returns the undo
    callable."""
    undo = []
    for i, block in enumerate(model.blocks):
        _swap(undo, block.attn1, WanSelfAttentionProcessor(engine.layer(f"blocks.{i}")))
    return _undoer(undo)
