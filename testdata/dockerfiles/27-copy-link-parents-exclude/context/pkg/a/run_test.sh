echo t
