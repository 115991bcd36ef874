"""Hugging Face Space entry point: the PyraTok demo (tokenize & reconstruct, text to video, zero-shot)."""

from pyratok_hf.space_app import MAX_UPLOAD_MB, build_demo

demo = build_demo()

if __name__ == "__main__":
    demo.launch(max_file_size=f"{MAX_UPLOAD_MB}mb")
