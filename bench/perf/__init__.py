"""What a decision costs: in process (score_turn, decide, instructions) and over HTTP
(load, floor, reload, the studio's replay)."""
