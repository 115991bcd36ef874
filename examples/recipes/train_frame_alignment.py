"""Stage 2b: teach the coarsest level's tokens *when* things happen, for zero-shot temporal localization.

    python examples/recipes/train_frame_alignment.py --tokenizer src/pyratok_hf/bundled/pyratok-tiny \
        --data data/align --select data/loc-train --output runs/frame-align

Localization (paper App. B.3) scores every latent frame's level-1 (coarsest, index 0) token against the query.
With ``level_fuse_grid="level"`` that token is computed from features average-pooled over the whole frame, which
erases a small object's motion (docs/zero-shot.md, "Why localization stays below its reference"). This recipe
switches the tokenizer to ``level_fuse_grid="latent"`` (same parameters: the level convs run on the latent grid,
then pool) and fine-tunes LaPQ and the shared-space video head with the backbone, decoder, text model and text
head frozen. The backbone runs once per clip (cached); each step then runs LaPQ only. Losses:

* ``latent``: MSE between the new quantized latent and the ``--tokenizer``'s quantized latent, the input the
  frozen decoder was trained on (reconstruction is checked on decoded pixels at the end). To continue a finished
  run, pass the same folder as ``--tokenizer`` and ``--init``: the target is then the run's own latents;
* ``commit``: the levels' commitment term (pre-quantization values near their ±1 codes);
* ``clip``: the contrastive term on clip features against captions of short clips (keeps retrieval);
* ``frame``: per latent frame of a long clip, InfoNCE of its level-0 frame feature (exactly what
  ``get_video_features(pooling="frame", level=0)`` returns) against the label of the action under way ("the red
  circle moves left") or, when nothing moves, ``STILL_TEXT``; the candidates are every label of the batch.

Every ``--eval-every`` steps it measures localization mAP on ``SELECT/val`` long clips and retrieval R@1 on
``DATA/val`` short clips from the cache (the same arithmetic as ``pyratok evaluate``), keeps the model with the
best localization mAP, and writes OUTPUT/model (a PyraTok folder), OUTPUT/history.json and OUTPUT/curves.png.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import random
import time

STILL_TEXT = "nothing moves, everything stays still"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tokenizer", default="src/pyratok_hf/bundled/pyratok-tiny")
    parser.add_argument("--data", default="data/align", help="corpus with short and procedural_long clips (train/val)")
    parser.add_argument("--select", default="data/loc-train", help="corpus whose val long clips pick the checkpoint")
    parser.add_argument("--output", default="runs/frame-align")
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--short-batch", type=int, default=16)
    parser.add_argument("--long-batch", type=int, default=4)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--frame-weight", type=float, default=1.0)
    parser.add_argument("--rank-weight", type=float, default=0.0, help="within-clip term: each action label picks its own frames among the clip's")
    parser.add_argument("--clip-weight", type=float, default=1.0)
    parser.add_argument("--latent-weight", type=float, default=10.0)
    parser.add_argument("--commit-weight", type=float, default=0.25)
    parser.add_argument("--eval-every", type=int, default=100)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-short", type=int, default=None)
    parser.add_argument("--max-long", type=int, default=None)
    parser.add_argument("--init", default=None, help="start from this run's model (a level_fuse_grid='latent' folder) instead of --tokenizer")
    parser.add_argument("--cache", default=None, help="save the backbone outputs here, or load them if the file exists")
    args = parser.parse_args(argv)

    import torch
    import torch.nn.functional as F
    from tqdm.auto import tqdm

    from pyratok_hf import PyraTokModel
    from pyratok_hf.evaluation.benchmarks import _moving_segments, load_records
    from pyratok_hf.lapq import resize_causal
    from pyratok_hf.losses import contrastive_loss
    from pyratok_hf.metrics import retrieval_metrics, temporal_action_localization_map
    from pyratok_hf.quantizer import commitment_loss
    from pyratok_hf.tasks.localization import localize_scores
    from pyratok_hf.tasks.retrieval import feature_frame_index

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    random.seed(args.seed)
    os.makedirs(args.output, exist_ok=True)
    started = time.time()

    old = PyraTokModel.from_pretrained(args.tokenizer).eval()
    model = PyraTokModel.from_pretrained(args.init or args.tokenizer, level_fuse_grid="latent").eval()
    window = model.config.causal_window_frames

    # ---------------------------------------------------------------- cache the frozen backbone's outputs
    @torch.no_grad()
    def cache(records, long: bool):
        items = []
        for r in tqdm(records, desc=f"backbone {'long' if long else 'short'}", mininterval=10):
            frames, _ = r.read()
            x = model._pad(frames.unsqueeze(0))
            z, laterals = model._encode_continuous(x)  # laterals on the latent grid (level_fuse_grid="latent")
            # A level_fuse_grid="level" tokenizer takes the same features pooled further, onto each level's grid.
            old_laterals = laterals if old.lapq.fuses_on_latent_grid else [
                resize_causal(lat, grid) for lat, grid in zip(laterals, old.lapq.grids(tuple(z.shape[2:])))
            ]
            target, _ = old.lapq(z, old_laterals)
            item = {"z": z, "laterals": laterals, "target": target, "text": r.text, "id": r.id}
            if long:
                item["num_frames"] = frames.shape[1]
                item["segments"] = [(s["label"], s["action"], int(s["start_frame"]), int(s["end_frame"])) for s in _moving_segments(r)]
                index = feature_frame_index(frames.shape[1], z.shape[2], model.config.temporal_compression, window)
                votes = [collections.Counter() for _ in range(z.shape[2])]
                labels = [STILL_TEXT] * frames.shape[1]
                for label, _, start, end in item["segments"]:
                    for f in range(start, end):
                        labels[f] = label
                for f, latent in enumerate(index.tolist()):
                    votes[latent][labels[f]] += 1
                item["frame_labels"] = [v.most_common(1)[0][0] if v else STILL_TEXT for v in votes]
                item["index"] = index
            items.append(item)
        return items

    short_kinds = ("procedural", "camera", "city")
    if args.cache and os.path.isfile(args.cache):
        short_train, long_train, short_val, long_val = torch.load(args.cache, weights_only=False)
    else:
        short_train = cache(load_records(args.data, "train", where=lambda r: r.kind in short_kinds, max_samples=args.max_short), False)
        long_train = cache(load_records(args.data, "train", where=lambda r: r.kind == "procedural_long" and bool(_moving_segments(r)), max_samples=args.max_long), True)
        short_val = cache(load_records(args.data, "val", where=lambda r: r.kind in short_kinds, max_samples=48), False)
        long_val = cache(load_records(args.select, "val", where=lambda r: r.kind == "procedural_long" and bool(_moving_segments(r))), True)
        if args.cache:
            torch.save((short_train, long_train, short_val, long_val), args.cache)
    cache_seconds = time.time() - started

    texts = sorted({i["text"] for i in short_train + short_val} | {l for i in long_train + long_val for l in i["frame_labels"]} | {STILL_TEXT})
    with torch.no_grad():
        text_features = torch.cat([model.get_text_features(text=texts[k : k + 64]).pooler_output for k in range(0, len(texts), 64)])
    text_index = {t: k for k, t in enumerate(texts)}

    # ---------------------------------------------------------------- what trains
    for p in model.parameters():
        p.requires_grad_(False)
    trainable = list(model.lapq.parameters()) + list(model.video_projection.parameters()) + [model.level_embedding]
    for p in trainable:
        p.requires_grad_(True)
    optimizer = torch.optim.AdamW(trainable, lr=args.lr, weight_decay=1e-4)
    temperature = float(model.config.contrastive_temperature)

    def frame_features(codes0):
        """``get_video_features(pooling="frame", level=0)`` for codes ``[1, t, h, w, K]`` -> ``[t, D]`` (normalised)."""
        return F.normalize(model.video_embeddings([codes0], pooling="token")[0][0].mean(dim=(1, 2)), dim=-1)

    def clip_feature(level_codes):
        return F.normalize(torch.stack(model.video_embeddings(level_codes)).mean(0), dim=-1)

    @torch.no_grad()
    def evaluate():
        model.eval()
        predictions, truth = [], []
        for item in long_val:
            _, levels = model.lapq(item["z"], item["laterals"])
            feats = frame_features(levels[0].codes)
            queries = torch.stack([text_features[text_index[label]] for label, *_ in item["segments"]])
            scores = (queries @ feats.T)[:, item["index"]]
            for q, (label, action, start, end) in enumerate(item["segments"]):
                truth.append((item["id"], action, start, end))
                found = localize_scores(scores[q], [label], window=25).segments
                if found:
                    predictions.append((item["id"], action, found[0].start_frame, found[0].end_frame, found[0].score))
        loc = temporal_action_localization_map(predictions, truth)["mAP"]
        videos = []
        for item in short_val:
            _, levels = model.lapq(item["z"], item["laterals"])
            videos.append(clip_feature([lv.codes for lv in levels])[0])
        queries = torch.stack([text_features[text_index[i["text"]]] for i in short_val])
        sim = queries @ torch.stack(videos).T
        same = torch.tensor([[a["text"] == b["text"] for b in short_val] for a in short_val])
        ret = retrieval_metrics(sim, positives=same)["t2v_R@1"]
        latent = sum(F.mse_loss(model.lapq(i["z"], i["laterals"])[0], i["target"]).item() for i in short_val) / len(short_val)
        return {"localization_mAP": loc, "retrieval_R@1": ret, "latent_mse_to_old": latent}

    history = {"args": vars(args), "cache_seconds": cache_seconds, "eval": [], "train": []}
    best, best_state = -1.0, None
    step_started = time.time()
    bar = tqdm(range(1, args.steps + 1), desc="frame alignment", mininterval=10)
    for step in bar:
        model.train()
        shorts = random.sample(short_train, min(args.short_batch, len(short_train)))
        longs = random.sample(long_train, min(args.long_batch, len(long_train)))
        latent_loss = commit = 0.0
        clip_feats, frame_feats, frame_targets = [], [], []
        rank = torch.zeros(())
        for item in shorts + longs:
            quantized, levels = model.lapq(item["z"], item["laterals"])
            latent_loss = latent_loss + F.mse_loss(quantized, item["target"])
            commit = commit + sum(commitment_loss(lv.logits, lv.codes) for lv in levels)
            if "frame_labels" in item:
                feats = frame_features(levels[0].codes)
                frame_feats.append(feats)
                frame_targets += [text_index[t] for t in item["frame_labels"]]
                for label, *_ in item["segments"]:
                    # Softmax over the clip's latent frames: the label's own frames should take the mass
                    # (what localization ranks), whatever the absolute similarity.
                    inside = torch.tensor([t == label for t in item["frame_labels"]])
                    if inside.any() and not inside.all():
                        log_p = torch.log_softmax(feats @ text_features[text_index[label]] / temperature, dim=0)
                        rank = rank + -torch.logsumexp(log_p[inside], dim=0) / max(len(longs), 1)
            else:
                clip_feats.append(clip_feature([lv.codes for lv in levels])[0])
        n = len(shorts) + len(longs)
        clip_texts = [text_index[i["text"]] for i in shorts]
        clip_loss = contrastive_loss(torch.stack(clip_feats), text_features[clip_texts], temperature) if clip_feats else torch.zeros(())
        candidates = sorted(set(frame_targets) | {text_index[STILL_TEXT]})
        remap = {c: k for k, c in enumerate(candidates)}
        frame_loss = F.cross_entropy(torch.cat(frame_feats) @ text_features[candidates].T / temperature, torch.tensor([remap[t] for t in frame_targets])) if frame_feats else torch.zeros(())
        loss = args.latent_weight * latent_loss / n + args.commit_weight * commit / n + args.clip_weight * clip_loss + args.frame_weight * frame_loss + args.rank_weight * rank
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        history["train"].append({"step": step, "loss": loss.item(), "latent": latent_loss.item() / n, "clip": clip_loss.item(), "frame": frame_loss.item(), "rank": rank.item()})
        if step % args.eval_every == 0 or step == args.steps:
            row = {"step": step, "seconds": time.time() - step_started, **evaluate()}
            history["eval"].append(row)
            print(json.dumps({k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()}), flush=True)
            if row["localization_mAP"] > best:
                best = row["localization_mAP"]
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
                model.save_pretrained(os.path.join(args.output, "model"))
            with open(os.path.join(args.output, "history.json"), "w") as f:
                json.dump(history, f, indent=1)
    history["train_seconds"] = time.time() - step_started
    history["best_localization_mAP"] = best
    with open(os.path.join(args.output, "history.json"), "w") as f:
        json.dump(history, f, indent=1)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [r["step"] for r in history["eval"]]
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.2))
    for ax, key, title in zip(axes, ("localization_mAP", "retrieval_R@1", "latent_mse_to_old"), ("localization mAP (select val)", "T2V R@1 (data val)", "latent MSE to the old tokens")):
        ax.plot(steps, [r[key] for r in history["eval"]], marker="o")
        ax.set_title(title)
        ax.set_xlabel("step")
    fig.tight_layout()
    fig.savefig(os.path.join(args.output, "curves.png"), dpi=100)
    print(f"best selection-set localization mAP {best:.4f}; cache {cache_seconds:.0f} s, training {history['train_seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
