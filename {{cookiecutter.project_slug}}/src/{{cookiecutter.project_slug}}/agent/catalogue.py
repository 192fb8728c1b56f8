"""The service's own user-facing texts (model errors, notices, guardrail refusals, the example
tools' progress) by language: `say(key, locale, **values)` answers in the locale's language
(`RequestContext.locale`, from Accept-Language), else in English. Add a language as a dict."""

from __future__ import annotations

from typing import Final

ENGLISH: Final = "en"

TEXTS: dict[str, dict[str, str]] = {
    "en": {
        "model.no_key": "The server has no OpenAI API key (set OPENAI_API_KEY).",
        "model.auth": "The model provider rejected the server's API key (401).",
        "model.denied": "The model provider denied access (403).",
        "model.busy": "The model is busy (rate limited). Try again in a moment.",
        "model.busy_for": "The model is busy (rate limited). Try again in {wait} s.",
        "model.not_found": "The model {model!r} was not found at the provider.",
        "model.timeout": "The model did not answer within {seconds:g} seconds.",
        "model.unreachable": "Could not reach the model provider.",
        "model.status": "The model provider answered with an error ({status}).",
        "model.failed": "The model call failed.",
        "attachments.title": "Some attachments were not read",
        "attachments.more": " and {count} more",
        "attachments.message": (
            "The answer did not see {count} of the {sent} attachments of your message "
            "({names}{more}): one request to the model carries at most {size}. "
            "Send the others in another message."
        ),
        "budget.spent.title": "Daily limit reached",
        "budget.spent": (
            "You have used today's {budget:,} tokens. New messages are refused until midnight UTC."
        ),
        "budget.near.title": "Daily limit nearly reached",
        "budget.near": (
            "You have used {percent}% of today's {budget:,} tokens ({spent:,}). "
            "It renews at midnight UTC."
        ),
        "guardrail.refused": "This message was not sent to the model (a guardrail stopped it).",
        "guardrail.removed": "The answer was removed (a guardrail stopped it).",
        "secrets.in_message": (
            "Your message seems to contain a secret key, so it was not sent to the model. "
            "Remove the key and send it again."
        ),
        "secrets.in_answer": (
            "The answer contained what looks like a secret key, so it was removed."
        ),
        "tools.checking_time": "Checking the time in {timezone}",
    },
    "fr": {
        "model.no_key": "Le serveur n'a pas de clé d'API OpenAI (OPENAI_API_KEY).",
        "model.auth": "Le fournisseur du modèle a refusé la clé d'API du serveur (401).",
        "model.denied": "Le fournisseur du modèle a refusé l'accès (403).",
        "model.busy": "Le modèle est occupé (limite de débit). Réessayez dans un instant.",
        "model.busy_for": "Le modèle est occupé (limite de débit). Réessayez dans {wait} s.",
        "model.not_found": "Le modèle {model!r} est introuvable chez le fournisseur.",
        "model.timeout": "Le modèle n'a pas répondu en {seconds:g} secondes.",
        "model.unreachable": "Impossible de joindre le fournisseur du modèle.",
        "model.status": "Le fournisseur du modèle a répondu par une erreur ({status}).",
        "model.failed": "L'appel au modèle a échoué.",
        "attachments.title": "Certaines pièces jointes n'ont pas été lues",
        "attachments.more": " et {count} de plus",
        "attachments.message": (
            "La réponse n'a pas vu {count} des {sent} pièces jointes de votre message "
            "({names}{more}) : une requête au modèle transporte au plus {size}. "
            "Envoyez les autres dans un autre message."
        ),
        "budget.spent.title": "Limite quotidienne atteinte",
        "budget.spent": (
            "Vous avez utilisé les {budget:,} jetons du jour. Les nouveaux messages sont "
            "refusés jusqu'à minuit UTC."
        ),
        "budget.near.title": "Limite quotidienne presque atteinte",
        "budget.near": (
            "Vous avez utilisé {percent} % des {budget:,} jetons du jour ({spent:,}). "
            "Elle se renouvelle à minuit UTC."
        ),
        "guardrail.refused": "Ce message n'a pas été envoyé au modèle (un garde-fou l'a arrêté).",
        "guardrail.removed": "La réponse a été retirée (un garde-fou l'a arrêtée).",
        "secrets.in_message": (
            "Votre message semble contenir une clé secrète : il n'a pas été envoyé au modèle. "
            "Retirez la clé et renvoyez-le."
        ),
        "secrets.in_answer": "La réponse contenait ce qui ressemble à une clé secrète : retirée.",
        "tools.checking_time": "Vérification de l'heure à {timezone}",
    },
    "de": {
        "model.no_key": "Der Server hat keinen OpenAI-API-Schlüssel (OPENAI_API_KEY).",
        "model.auth": "Der Modellanbieter hat den API-Schlüssel des Servers abgelehnt (401).",
        "model.denied": "Der Modellanbieter hat den Zugriff verweigert (403).",
        "model.busy": "Das Modell ist ausgelastet (Ratenlimit). Bitte gleich noch einmal.",
        "model.busy_for": "Das Modell ist ausgelastet (Ratenlimit). Erneut versuchen in {wait} s.",
        "model.not_found": "Das Modell {model!r} wurde beim Anbieter nicht gefunden.",
        "model.timeout": "Das Modell hat nicht innerhalb von {seconds:g} Sekunden geantwortet.",
        "model.unreachable": "Der Modellanbieter ist nicht erreichbar.",
        "model.status": "Der Modellanbieter hat mit einem Fehler geantwortet ({status}).",
        "model.failed": "Der Aufruf des Modells ist fehlgeschlagen.",
        "attachments.title": "Einige Anhänge wurden nicht gelesen",
        "attachments.more": " und {count} weitere",
        "attachments.message": (
            "Die Antwort hat {count} der {sent} Anhänge Ihrer Nachricht nicht gesehen "
            "({names}{more}): eine Anfrage an das Modell trägt höchstens {size}. "
            "Senden Sie die anderen in einer weiteren Nachricht."
        ),
        "budget.spent.title": "Tageslimit erreicht",
        "budget.spent": (
            "Sie haben die {budget:,} Tokens des heutigen Tages verbraucht. Neue Nachrichten "
            "werden bis Mitternacht UTC abgelehnt."
        ),
        "budget.near.title": "Tageslimit fast erreicht",
        "budget.near": (
            "Sie haben {percent} % der heutigen {budget:,} Tokens verbraucht ({spent:,}). "
            "Es erneuert sich um Mitternacht UTC."
        ),
        "guardrail.refused": "Die Nachricht ging nicht an das Modell (ein Guardrail hielt sie an).",
        "guardrail.removed": "Die Antwort wurde entfernt (ein Guardrail hielt sie an).",
        "secrets.in_message": (
            "Ihre Nachricht scheint einen geheimen Schlüssel zu enthalten und ging daher nicht "
            "an das Modell. Entfernen Sie den Schlüssel und senden Sie sie erneut."
        ),
        "secrets.in_answer": "Die Antwort enthielt offenbar einen geheimen Schlüssel: entfernt.",
        "tools.checking_time": "Uhrzeit in {timezone} wird abgefragt",
    },
}


def language_of(locale: str) -> str:
    """The catalogue language for a language tag (`fr-CA` -> `fr`), else English."""
    language = locale.split("-", 1)[0].lower()
    return language if language in TEXTS else ENGLISH


def say(key: str, locale: str = ENGLISH, /, **values: object) -> str:
    """The text `key` in the locale's language (else English), filled with `values`."""
    template = TEXTS[language_of(locale)].get(key) or TEXTS[ENGLISH][key]
    return template.format(**values)
