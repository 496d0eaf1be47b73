"""Transformer encoders: text ids in, last-layer token states out.

Every backbone is an ``nn.Module`` whose ``forward(input_ids, attention_mask)`` returns the last
hidden state ``[batch, seq, hidden]``; nothing else in polycolbert depends on which one it is.
"""
