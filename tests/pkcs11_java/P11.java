// Java's SunPKCS11 provider (module jdk.crypto.cryptoki) against Keyward's PKCS#11 module, run
// by tests/pkcs11_java_e2e.rs as a single-file program:
//
//     java tests/pkcs11_java/P11.java SUNPKCS11_CONFIG PIN MODE [ALIAS]
//
// with KEYWARD_PKCS11_CONF naming the module's own configuration. Every mode loads the module,
// logs in through the PKCS11 KeyStore (its password is the PIN) and lists the key store; then
//   sign      generates an EC P-256 pair through the provider, signs with SHA256withECDSA on
//             the token and verifies the signature through the provider and with the JDK's
//             own SunEC provider (on the message and on a changed message);
//   generate  only generates the EC P-256 pair and prints what the provider made of it;
//   aes       encrypts and decrypts with the key store's secret key ALIAS, AES/GCM/NoPadding
//             and AES/CBC/PKCS5Padding, each with an IV chosen here.
// Every result is one `name: value` line on stdout, which the Rust test asserts on; an
// unexpected exception ends the program with a stack trace and status 1.

import java.nio.charset.StandardCharsets;
import java.security.Key;
import java.security.KeyFactory;
import java.security.KeyPair;
import java.security.KeyPairGenerator;
import java.security.KeyStore;
import java.security.Provider;
import java.security.PublicKey;
import java.security.Security;
import java.security.Signature;
import java.security.interfaces.ECPublicKey;
import java.security.spec.AlgorithmParameterSpec;
import java.security.spec.ECGenParameterSpec;
import java.security.spec.X509EncodedKeySpec;
import java.util.Arrays;
import java.util.Collections;
import java.util.HexFormat;
import javax.crypto.Cipher;
import javax.crypto.spec.GCMParameterSpec;
import javax.crypto.spec.IvParameterSpec;

public class P11 {
    static final HexFormat HEX = HexFormat.of();

    public static void main(String[] args) throws Exception {
        if (args.length < 3) {
            System.err.println("usage: java P11.java SUNPKCS11_CONFIG PIN sign|generate|aes [ALIAS]");
            System.exit(2);
        }
        Provider p = Security.getProvider("SunPKCS11").configure(args[0]);
        Security.addProvider(p);
        System.out.println("provider: " + p.getName());

        // Logging in: SunPKCS11 calls C_Login with the key store password as the PIN.
        KeyStore ks = KeyStore.getInstance("PKCS11", p);
        ks.load(null, args[1].toCharArray());
        var aliases = Collections.list(ks.aliases());
        Collections.sort(aliases);
        System.out.println("keystore aliases: " + aliases.size());
        for (String alias : aliases) {
            String kind = ks.entryInstanceOf(alias, KeyStore.PrivateKeyEntry.class) ? "private-key"
                    : ks.entryInstanceOf(alias, KeyStore.SecretKeyEntry.class) ? "secret-key"
                    : ks.entryInstanceOf(alias, KeyStore.TrustedCertificateEntry.class) ? "certificate"
                    : "other";
            System.out.println("keystore entry: " + alias + " " + kind);
        }

        switch (args[2]) {
            case "sign" -> sign(p);
            case "generate" -> generate(p);
            case "aes" -> aes(p, ks.getKey(args[3], null));
            default -> throw new IllegalArgumentException("unknown mode " + args[2]);
        }
    }

    static KeyPair generate(Provider p) throws Exception {
        KeyPairGenerator gen = KeyPairGenerator.getInstance("EC", p);
        gen.initialize(new ECGenParameterSpec("secp256r1"));
        KeyPair pair = gen.generateKeyPair();
        // P11Key.toString reads CKA_TOKEN, CKA_SENSITIVE and CKA_EXTRACTABLE from the token:
        // "... token object" or "... session object, sensitive, unextractable".
        System.out.println("generated private: " + pair.getPrivate());
        System.out.println("generated public: " + pair.getPublic().getClass().getName());
        return pair;
    }

    static void sign(Provider p) throws Exception {
        KeyPair pair = generate(p);
        String text = "signed by Keyward through SunPKCS11";
        byte[] message = text.getBytes(StandardCharsets.UTF_8);
        System.out.println("message: " + text);

        Signature signer = Signature.getInstance("SHA256withECDSA", p);
        signer.initSign(pair.getPrivate());
        signer.update(message);
        byte[] sig = signer.sign();
        System.out.println("signature provider: " + signer.getProvider().getName());
        System.out.println("signature der: " + HEX.formatHex(sig));

        Signature onToken = Signature.getInstance("SHA256withECDSA", p);
        onToken.initVerify(pair.getPublic());
        onToken.update(message);
        System.out.println("verified by token: " + onToken.verify(sig));

        // The public key leaves the token as a SubjectPublicKeyInfo; SunEC checks the signature
        // without PKCS#11.
        PublicKey plain = KeyFactory.getInstance("EC", "SunEC")
                .generatePublic(new X509EncodedKeySpec(pair.getPublic().getEncoded()));
        System.out.println("public key field bits: "
                + ((ECPublicKey) plain).getParams().getCurve().getField().getFieldSize());
        System.out.println("public key spki: " + HEX.formatHex(plain.getEncoded()));
        System.out.println("signature verified: " + verify(plain, message, sig));
        byte[] changed = message.clone();
        changed[0] ^= 1;
        System.out.println("changed message verified: " + verify(plain, changed, sig));
    }

    static boolean verify(PublicKey key, byte[] message, byte[] sig) throws Exception {
        Signature v = Signature.getInstance("SHA256withECDSA", "SunEC");
        v.initVerify(key);
        v.update(message);
        return v.verify(sig);
    }

    static void aes(Provider p, Key key) throws Exception {
        System.out.println("secret key: " + key);
        byte[] plaintext = "AES through SunPKCS11 and Keyward".getBytes(StandardCharsets.UTF_8);
        // Fixed IVs: the Rust test's expectations do not depend on chance.
        byte[] iv12 = HEX.parseHex("000102030405060708090a0b");
        byte[] iv16 = HEX.parseHex("000102030405060708090a0b0c0d0e0f");
        roundTrip(p, key, "AES/GCM/NoPadding", new GCMParameterSpec(128, iv12), plaintext);
        roundTrip(p, key, "AES/CBC/PKCS5Padding", new IvParameterSpec(iv16), plaintext);
    }

    // One line per transformation: the ciphertext's length, then whether decryption with the
    // same key and IV gave the plaintext back (or the exception and its cause).
    static void roundTrip(Provider p, Key key, String transformation, AlgorithmParameterSpec spec,
            byte[] plaintext) throws Exception {
        System.out.flush();
        try {
            Cipher c = Cipher.getInstance(transformation, p);
            c.init(Cipher.ENCRYPT_MODE, key, spec);
            byte[] ct = c.doFinal(plaintext);
            System.out.println(transformation + " ciphertext bytes: " + ct.length);
            System.out.flush();
            c.init(Cipher.DECRYPT_MODE, key, spec);
            byte[] back = c.doFinal(ct);
            System.out.println(transformation + " round trip: " + Arrays.equals(back, plaintext));
        } catch (java.security.GeneralSecurityException | java.security.ProviderException e) {
            System.out.println(transformation + " round trip: " + e + " (cause: " + e.getCause() + ")");
        }
    }
}
