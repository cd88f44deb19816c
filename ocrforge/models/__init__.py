"""Networks: backbones, necks, heads, and the model containers that chain them."""
