"""Why a user operation was refused."""


class EmailAlreadyRegistered(Exception):
    """The email's key is taken. The message neither repeats the address nor says whose it is:
    the answer (a 409) is as much as registration gives away, and it is rate-limited."""

    def __init__(self, email: str) -> None:
        super().__init__("this email address cannot be used to register a new account")
        self.email = email


class InvalidCredentials(Exception):
    """Wrong email or wrong password: deliberately the same error for both."""

    def __init__(self) -> None:
        super().__init__("the email or password is incorrect")
