"""Sample exam questions: the demo, the tests and the benchmark's default corpus use them."""

EXAM_QUESTIONS = [
    "Расскажите о причинах Первой мировой войны",
    "Что такое производная функции?",
    "Какие бывают типы данных в Python?",
    "Что такое фотосинтез?",
    'Кто написал роман "Война и мир" и о чём он?',
    "Что такое инфляция?",
]
