"""Package marker so the evaluate script in this folder is installed with pyratok-hf."""
